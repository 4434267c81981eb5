/* zframes.h — receiving one whole ZeroMQ multipart message into an array of frames,
 * shared by the broker daemon and the engine's ZeroMQ transport. */
#ifndef AB_ZFRAMES_H
#define AB_ZFRAMES_H

#include <zmq.h>

#define AB_FRAMES_MAX 16 /* more frames than any honest message of ours has */

/* Receive one message from sock: its first frame without waiting, the rest as ZeroMQ
 * delivers them (whole messages only). At most AB_FRAMES_MAX frames are kept in frames;
 * *extra counts the ones received and dropped beyond that. Returns the number kept (the
 * caller closes them), 0 when no message waits, -1 on a socket fault (nothing kept). */
int ab_zframes_recv(void *sock, zmq_msg_t *frames, int *extra);

#endif
