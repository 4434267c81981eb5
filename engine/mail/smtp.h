/* smtp.h — submitting one message to an SMTP server with libcurl (issue 6): plain,
 * STARTTLS (required) or implicit TLS, optional authentication, a timeout, and the
 * server's last reply (code and text) so the caller can tell a temporary failure (4xx, no
 * connection, a timeout) from a permanent one (5xx). */
#ifndef AB_SMTP_H
#define AB_SMTP_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    AB_SMTP_TLS_NONE,     /* plain SMTP */
    AB_SMTP_TLS_STARTTLS, /* STARTTLS, required */
    AB_SMTP_TLS_IMPLICIT, /* SMTPS */
} ab_smtp_tls;

typedef struct {
    const char *host;
    int port;
    ab_smtp_tls tls;
    bool tls_verify;         /* check the certificate and the name */
    const char *username;    /* NULL or "": no authentication */
    const char *password;    /* with username */
    long timeout_s;          /* to connect, and without progress */
    const char *helo_domain; /* the name we give in EHLO; NULL: libcurl's default */
} ab_smtp_conf;

/* What happened. */
typedef enum {
    AB_SMTP_SENT,      /* the server accepted the message (2xx after the data) */
    AB_SMTP_TEMPORARY, /* try again later: a 4xx reply, no connection, a timeout, TLS
                        * trouble */
    AB_SMTP_PERMANENT, /* a 5xx reply to the sender, the recipient or the data */
    AB_SMTP_LOGIN,     /* the server refused our login (Email.username, Email.password):
                        * no message can go until the settings are fixed */
} ab_smtp_outcome;

typedef struct {
    ab_smtp_outcome outcome;
    int code;       /* the server's last reply code; 0 when it never answered */
    char text[512]; /* the server's last reply line(s), or libcurl's reason */
} ab_smtp_result;

/* Map a tls setting value ("none", "starttls", "tls") to the enum; -1 when unknown. */
int ab_smtp_tls_from_name(const char *name);

/* Send msg (len bytes, a whole RFC 5322 message with CRLF line ends) from `from` to the
 * single recipient `to` (both checked addresses: ab_mime_address_ok). Fills *res; returns 0
 * when sent, -1 otherwise. Thread-safe (one easy handle per call). */
int ab_smtp_send(const ab_smtp_conf *conf, const char *from, const char *to, const char *msg,
                 size_t len, ab_smtp_result *res);

#endif
