/* zframes.c — see zframes.h. */
#include "zmq/zframes.h"

#include <errno.h>
#include <stdbool.h>

int ab_zframes_recv(void *sock, zmq_msg_t *frames, int *extra)
{
    int n = 0;
    bool more = true;
    *extra = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        /* Only the first frame can be missing: ZeroMQ delivers whole messages. */
        if (zmq_msg_recv(&m, sock, n == 0 && *extra == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&frames[i]);
            return n == 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        }
        more = zmq_msg_more(&m);
        if (n < AB_FRAMES_MAX) {
            zmq_msg_init(&frames[n]);
            zmq_msg_move(&frames[n++], &m);
        } else {
            (*extra)++;
        }
        zmq_msg_close(&m); /* empty after a move */
    }
    return n;
}
