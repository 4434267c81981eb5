/* smtp.c — one message to an SMTP server through libcurl (see smtp.h). */
#include "mail/smtp.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int ab_smtp_tls_from_name(const char *name)
{
    if (!name || strcmp(name, "none") == 0)
        return AB_SMTP_TLS_NONE;
    if (strcmp(name, "starttls") == 0)
        return AB_SMTP_TLS_STARTTLS;
    if (strcmp(name, "tls") == 0)
        return AB_SMTP_TLS_IMPLICIT;
    return -1;
}

typedef struct {
    const char *msg;
    size_t len, off;
} s_upload;

static size_t s_read(char *buf, size_t size, size_t n, void *arg)
{
    s_upload *u = arg;
    size_t room = size * n, left = u->len - u->off;
    size_t take = left < room ? left : room;
    memcpy(buf, u->msg + u->off, take);
    u->off += take;
    return take;
}

/* The server's reply lines as they arrive. `line` gathers the current reply (a multi-line
 * reply "250-a" "250 b" as "a b"); when it is complete it becomes `last` (unless it answers
 * our QUIT) and, for the first reply of 400 or more, `failure`: after a refusal libcurl
 * says QUIT, and the refusal is what the caller needs. What we send is never looked at,
 * so an AUTH line cannot end up in a message. */
typedef struct {
    char line[512], last[512], failure[512];
    bool complete; /* the last line seen ended its reply */
} s_replies;

static void s_reply_done(s_replies *r)
{
    int code = atoi(r->line);
    if (code != 221)
        memcpy(r->last, r->line, sizeof r->last);
    if (code >= 400 && !r->failure[0])
        memcpy(r->failure, r->line, sizeof r->failure);
}

static int s_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
    (void)h;
    s_replies *r = arg;
    if (type != CURLINFO_HEADER_IN)
        return 0;
    while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
        size--;
    if (r->complete) {
        r->line[0] = '\0';
        r->complete = false;
    }
    size_t have = strlen(r->line);
    if (have > 0 && have + 1 < sizeof r->line)
        r->line[have++] = ' ';
    size_t room = sizeof r->line - have - 1;
    size_t take = size < room ? size : room;
    for (size_t i = 0; i < take; i++) /* keep it printable: it goes to logs and replies */
        r->line[have + i] = (data[i] >= 0x20 && data[i] < 0x7F) ? data[i] : '?';
    r->line[have + take] = '\0';
    r->complete = size < 4 || data[3] != '-';
    if (r->complete)
        s_reply_done(r);
    return 0;
}

static void s_classify(CURLcode rc, long code, const char *curl_err, s_replies *rep,
                       ab_smtp_result *res)
{
    res->code = (int)code;
    if (rc == CURLE_OK) {
        res->outcome = AB_SMTP_SENT;
        snprintf(res->text, sizeof res->text, "%s", rep->last[0] ? rep->last : "accepted");
        return;
    }
    /* A 5xx to our sender, recipient or data is the server's final word about that
     * message; a refused login (535) is about every message: our settings are wrong. */
    bool permanent = code >= 500 && code < 600;
    res->outcome = rc == CURLE_LOGIN_DENIED ? AB_SMTP_LOGIN
                   : permanent              ? AB_SMTP_PERMANENT
                                            : AB_SMTP_TEMPORARY;
    const char *said = rep->failure[0] ? rep->failure : rep->last;
    if (rep->failure[0])
        res->code = code = atoi(rep->failure); /* not the 221 of the QUIT that followed */
    if (code >= 400 && said[0])
        snprintf(res->text, sizeof res->text, "%s", said);
    else
        snprintf(res->text, sizeof res->text, "%s",
                 curl_err[0] ? curl_err : curl_easy_strerror(rc));
}

static struct curl_slist *s_recipient(const char *to)
{
    char rcpt[300];
    snprintf(rcpt, sizeof rcpt, "<%s>", to);
    return curl_slist_append(NULL, rcpt);
}

int ab_smtp_send(const ab_smtp_conf *conf, const char *from, const char *to, const char *msg,
                 size_t len, ab_smtp_result *res)
{
    pthread_once(&s_once, s_init);
    memset(res, 0, sizeof *res);
    CURL *h = curl_easy_init();
    struct curl_slist *rcpt = h ? s_recipient(to) : NULL;
    if (!h || !rcpt) {
        curl_slist_free_all(rcpt);
        if (h)
            curl_easy_cleanup(h);
        res->outcome = AB_SMTP_TEMPORARY;
        snprintf(res->text, sizeof res->text, "out of memory");
        return -1;
    }
    char url[300], mail_from[300], curl_err[CURL_ERROR_SIZE] = "";
    snprintf(url, sizeof url, "%s://%s:%d/%s", conf->tls == AB_SMTP_TLS_IMPLICIT ? "smtps" : "smtp",
             conf->host, conf->port, conf->helo_domain ? conf->helo_domain : "");
    snprintf(mail_from, sizeof mail_from, "<%s>", from);
    s_upload up = {msg, len, 0};
    s_replies rep = {.complete = true};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USE_SSL,
                     (long)(conf->tls == AB_SMTP_TLS_NONE ? CURLUSESSL_NONE : CURLUSESSL_ALL));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, conf->tls_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, conf->tls_verify ? 2L : 0L);
    if (conf->username && *conf->username) {
        curl_easy_setopt(h, CURLOPT_USERNAME, conf->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, conf->password ? conf->password : "");
    }
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, conf->timeout_s);
    curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, conf->timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, conf->timeout_s);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, mail_from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, s_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L); /* the debug callback sees the replies */
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, s_debug);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, &rep);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    s_classify(rc, code, curl_err, &rep, res);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(h);
    return res->outcome == AB_SMTP_SENT ? 0 : -1;
}
