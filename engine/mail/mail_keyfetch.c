/* mail_keyfetch.c — the `gpgkey_fetch` job (adminctl user gpg fetch USER, issue 6): the
 * user's GnuPG key from the Web Key Directory of the address's domain, else from the
 * configured key server (HKP), checked exactly as a key given with --gpgkey-file
 * (gpgkey.c), stored in users.gpgkey and audited.
 *
 * Why a job: the engine applies commands inside database transactions and never waits on
 * the network there (mail.test's 10 s being the one exception); a key server can take
 * seconds or not answer at all. The command enqueues the job; a worker fetches with no
 * transaction open, and only the short write of the key happens in the job's completing
 * transaction. */
#include "mail/mail_keyfetch.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit.h"
#include "wire/envelope.h"
#include "mail/gpgkey.h"
#include "wire/log.h"
#include "mail/mime.h"
#include "core/settings_cache.h"

#define KEY_MAX       (1u << 20) /* bytes: a key bigger than this is not a user's key */
#define FETCH_TIMEOUT 20L        /* seconds for one request */
#define URL_MAX       2048
#define ADDR_MAX      255

const ab_arg ab_gpgkey_fetch_args[AB_GPGKEY_FETCH_NARGS] = {
    {"user_id", AB_ARG_INT, true, false, 1, UINT32_MAX, NULL, "The user whose key is fetched", 0},
    {"email", AB_ARG_STR, true, false, 3, ADDR_MAX, NULL,
     "The user's address when the fetch was asked for (the key is looked up for it)", 0},
};

/* --- Web Key Directory: z-base-32 of SHA-1 of the lower-cased local part ------------------ */

static void s_zbase32(const unsigned char *in, size_t n, char *out)
{
    static const char alphabet[] = "ybndrfg8ejkmcpqxot1uwisza345h769";
    unsigned buf = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        buf = (buf << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = alphabet[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = alphabet[(buf << (5 - bits)) & 31];
    out[o] = '\0';
}

/* The WKD hash of local (len bytes); out holds 33 bytes (160 bits = 32 characters). */
int ab_wkd_hash(const char *local, size_t len, char out[33])
{
    char lower[ADDR_MAX + 1];
    if (len > ADDR_MAX)
        return -1;
    for (size_t i = 0; i < len; i++)
        lower[i] = (char)tolower((unsigned char)local[i]);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(lower, len, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return -1;
    s_zbase32(md, mdlen, out);
    return 0;
}

/* --- ASCII armour for the binary keys WKD serves (RFC 4880 §6) ---------------------------- */

static uint32_t s_crc24(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xB704CEu;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint32_t)p[i] << 16;
        for (int b = 0; b < 8; b++) {
            crc <<= 1;
            if (crc & 0x1000000u)
                crc ^= 0x1864CFBu;
        }
    }
    return crc & 0xFFFFFFu;
}

static void s_armour(const unsigned char *bin, size_t n, ab_mime_buf *out)
{
    ab_mime_buf_adds(out, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n");
    unsigned char line[65];
    for (size_t i = 0; i < n; i += 48) {
        size_t k = n - i < 48 ? n - i : 48;
        int w = EVP_EncodeBlock(line, bin + i, (int)k);
        ab_mime_buf_add(out, (const char *)line, (size_t)w);
        ab_mime_buf_adds(out, "\n");
    }
    uint32_t crc = s_crc24(bin, n);
    unsigned char c3[3] = {(unsigned char)(crc >> 16), (unsigned char)(crc >> 8),
                           (unsigned char)crc},
                  c4[8];
    EVP_EncodeBlock(c4, c3, 3);
    ab_mime_buf_printf(out, "=%s\n-----END PGP PUBLIC KEY BLOCK-----\n", (const char *)c4);
}

/* --- fetching ----------------------------------------------------------------------------- */

typedef struct {
    ab_mime_buf body;
    bool too_big;
} s_download;

static size_t s_sink(char *p, size_t size, size_t n, void *arg)
{
    s_download *d = arg;
    if (d->body.len + size * n > KEY_MAX) {
        d->too_big = true;
        return 0;
    }
    ab_mime_buf_add(&d->body, p, size * n);
    return size * n;
}

/* GET url. Returns the HTTP status (200, 404, …), or 0 when no answer came (why in why). */
static long s_get(const char *url, s_download *d, char *why, size_t whylen)
{
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(why, whylen, "libcurl cannot start");
        return 0;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, FETCH_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, FETCH_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "adminbus");
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(why, whylen, "%s",
                 d->too_big ? "the answer is larger than 1 MiB"
                 : *errbuf  ? errbuf
                            : curl_easy_strerror(rc));
    curl_easy_cleanup(h);
    return status;
}

static void s_urlencode(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '.' || c == '-' || c == '_')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", c);
    }
    out[o] = '\0';
}

/* What one place gave: the key as armour (owned), or why not. */
typedef struct {
    char url[URL_MAX];
    long status; /* HTTP status, 0: no answer */
    char why[300];
    ab_mime_buf armour;
} s_source;

/* Fetch src->url; a 200 answer becomes src->armour (binary keys are armoured). */
static void s_fetch(s_source *src, bool binary)
{
    s_download d = {0};
    src->status = s_get(src->url, &d, src->why, sizeof src->why);
    if (src->status == 200 && d.body.len > 0 && !d.body.oom) {
        bool armoured = d.body.len > 10 && memmem(d.body.data, d.body.len, "-----BEGIN PGP", 14);
        if (binary && !armoured)
            s_armour((const unsigned char *)d.body.data, d.body.len, &src->armour);
        else
            ab_mime_buf_add(&src->armour, d.body.data, d.body.len);
    } else if (src->status == 200) {
        snprintf(src->why, sizeof src->why, "an empty answer");
        src->status = 404;
    } else if (src->status) {
        snprintf(src->why, sizeof src->why, "HTTP %ld", src->status);
    }
    ab_mime_buf_free(&d.body);
}

/* The WKD URL of email: under base (GnuPG.wkd_url) when set, else the advanced method's
 * https://openpgpkey.DOMAIN/.well-known/openpgpkey/DOMAIN/hu/HASH?l=LOCAL, or with direct
 * the direct method's https://DOMAIN/.well-known/openpgpkey/hu/HASH?l=LOCAL. */
static int s_wkd_url(const char *base, bool direct, const char *email, char *url, size_t cap)
{
    const char *at = strrchr(email, '@');
    char hash[33], local[3 * ADDR_MAX + 1], domain[ADDR_MAX + 1];
    if (!at || ab_wkd_hash(email, (size_t)(at - email), hash) < 0)
        return -1;
    char part[ADDR_MAX + 1];
    snprintf(part, sizeof part, "%.*s", (int)(at - email), email);
    s_urlencode(part, local, sizeof local);
    size_t i = 0;
    for (const char *p = at + 1; *p && i < ADDR_MAX; p++)
        domain[i++] = (char)tolower((unsigned char)*p);
    domain[i] = '\0';
    int n = base && *base ? snprintf(url, cap, "%s/.well-known/openpgpkey/%s/hu/%s?l=%s", base,
                                     domain, hash, local)
            : direct
                ? snprintf(url, cap, "https://%s/.well-known/openpgpkey/hu/%s?l=%s", domain, hash,
                           local)
                : snprintf(url, cap, "https://openpgpkey.%s/.well-known/openpgpkey/%s/hu/%s?l=%s",
                           domain, domain, hash, local);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* --- the job -------------------------------------------------------------------------------- */

static bool s_http_url(const char *s)
{
    return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
           !strpbrk(s, " \r\n\t?#");
}

typedef struct {
    ab_job_run *run;
    ab_db *db;
    uint32_t user_id;
    char email[ADDR_MAX + 1];
    char *keyserver, *wkd_base;
    s_source wkd, hkp;
    const s_source *found;
    char fpr[AB_GPGKEY_FPR_MAX];
} s_fetch_job;

static int s_check_user(s_fetch_job *f, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, f->user_id);
    ab_rows rows = {0};
    if (ab_db_query(f->db, "SELECT email FROM users WHERE id = ?", &p, &rows, err) < 0)
        return -1;
    int found = ab_rows_next(&rows);
    bool same = found == 1 && strcmp(ab_rows_str(&rows, 0, NULL), f->email) == 0;
    ab_rows_close(&rows);
    if (found != 1)
        return ab_fail(err, AB_E_NOT_FOUND, "user", "user %u no longer exists: nothing fetched",
                       f->user_id);
    if (!same)
        return ab_fail(err, AB_E_CONFLICT, "user",
                       "the address of user %u changed since the fetch was asked for (%s): "
                       "nothing fetched; ask again",
                       f->user_id, f->email);
    return 0;
}

/* Look in the WKD, then on the key server; f->found is the first place with a key. A
 * key server that cannot be reached is temporary (the job is retried). */
static int s_lookup(s_fetch_job *f, ab_error *err)
{
    snprintf(f->wkd.why, sizeof f->wkd.why, "nothing (the address has no WKD URL)");
    if (s_wkd_url(f->wkd_base, false, f->email, f->wkd.url, sizeof f->wkd.url) == 0)
        s_fetch(&f->wkd, true);
    /* No openpgpkey.DOMAIN (no answer at all): the direct method, as WKD clients do. */
    bool own_domain = !f->wkd_base || !*f->wkd_base;
    if (own_domain && f->wkd.status == 0 &&
        s_wkd_url(NULL, true, f->email, f->wkd.url, sizeof f->wkd.url) == 0)
        s_fetch(&f->wkd, true);
    if (f->wkd.status == 200) {
        f->found = &f->wkd;
        return 0;
    }
    if (f->keyserver && *f->keyserver) {
        char q[3 * ADDR_MAX + 1];
        s_urlencode(f->email, q, sizeof q);
        snprintf(f->hkp.url, sizeof f->hkp.url, "%s/pks/lookup?op=get&options=mr&search=%s",
                 f->keyserver, q);
        s_fetch(&f->hkp, false);
        if (f->hkp.status == 200) {
            f->found = &f->hkp;
            return 0;
        }
        if (f->hkp.status == 0 || f->hkp.status >= 500)
            return ab_fail(err, AB_E_UNAVAILABLE, "GnuPG.keyserver",
                           "the key server did not answer (%s; the WKD: %s): retried later "
                           "(GnuPG.keyserver %.100s)",
                           f->hkp.why, f->wkd.why, f->keyserver);
    }
    AB_INFO("gpgkey_fetch: no key for %s: %s: %s; %s: %s", f->email, f->wkd.url, f->wkd.why,
            f->hkp.url, f->hkp.why);
    return ab_fail(err, AB_E_NOT_FOUND, "user",
                   "no GnuPG key for %s: the Web Key Directory answered %s, %s%s; nothing was "
                   "changed. Ask the user for the key (adminctl user edit --gpgkey-file)",
                   f->email, f->wkd.why, *f->hkp.url ? "the key server: " : "",
                   *f->hkp.url ? f->hkp.why : "GnuPG.keyserver is not set");
}

/* The key found, checked as for --gpgkey-file, then stored and audited in the job's
 * completing transaction. */
static int s_store(s_fetch_job *f, ab_error *err)
{
    const ab_mime_buf *k = &f->found->armour;
    ab_error kerr;
    if (ab_gpgkey_check_for(NULL, k->data, k->len, f->email, f->fpr, &kerr) < 0)
        return ab_fail(err, kerr.code, kerr.field,
                       "the key %s returned for %s cannot be used: %s; nothing was changed",
                       f->found == &f->wkd ? "the Web Key Directory" : "the key server", f->email,
                       kerr.message);
    ab_params p;
    ab_params_init(&p);
    ab_param_str(&p, k->data, k->len);
    ab_param_int(&p, f->user_id);
    return ab_db_run(f->db,
                     "UPDATE users SET gpgkey = ?, date_modified = UTC_TIMESTAMP(3) WHERE id = ?",
                     &p, NULL, NULL, err);
}

/* Who asked for the fetch (the job's creator), as the audit row's actor. */
static int s_actor(s_fetch_job *f, ab_actor *a, char *email, char *org, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)ab_job_id(f->run));
    ab_rows rows = {0};
    if (ab_db_query(f->db,
                    "SELECT u.id, u.email, o.name FROM jobs j JOIN users u ON u.id = j.created_by "
                    "LEFT JOIN organisations o ON o.id = u.org_id WHERE j.id = ?",
                    &p, &rows, err) < 0)
        return -1;
    *a = (ab_actor){.user_id = 0, .email = email, .org = org};
    snprintf(org, 256, "SYSTEM");
    *email = '\0';
    if (ab_rows_next(&rows) == 1) {
        const char *e = ab_rows_str(&rows, 1, NULL), *o = ab_rows_str(&rows, 2, NULL);
        a->user_id = (uint32_t)ab_rows_int(&rows, 0);
        snprintf(email, ADDR_MAX + 1, "%s", e ? e : "");
        if (o)
            snprintf(org, 256, "%s", o);
    }
    ab_rows_close(&rows);
    return 0;
}

/* The audit row of the stored key (an edit of the user, as user.edit --gpgkey writes). */
static int s_audit(s_fetch_job *f, ab_error *err)
{
    char title[600], change[1500], email[ADDR_MAX + 1], org[256];
    ab_actor actor;
    if (s_actor(f, &actor, email, org, err) < 0)
        return -1;
    snprintf(title, sizeof title, "User (%u): %s: GnuPG key fetched from %s", f->user_id, f->email,
             f->found == &f->wkd ? "the Web Key Directory" : "the key server");
    snprintf(change, sizeof change, "gpgkey () => (%s from %.1200s)", f->fpr, f->found->url);
    ab_audit *audit = ab_audit_new();
    int rc = !audit || ab_audit_add(audit, &actor, "User", f->user_id, "edit", title, change) < 0
                 ? ab_fail(err, AB_E_INTERNAL, NULL, "out of memory")
                 : ab_audit_flush(audit, f->db, err);
    ab_audit_destroy(&audit);
    return rc;
}

int ab_gpgkey_fetch_job(ab_job_run *run, const msgpack_object *args, ab_error *err)
{
    s_fetch_job f = {.run = run, .db = ab_job_db(run)};
    const msgpack_object *uid = ab_map_get(args, "user_id"), *em = ab_map_get(args, "email");
    if (!uid || uid->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !em ||
        em->type != MSGPACK_OBJECT_STR || em->via.str.size > ADDR_MAX)
        return ab_fail(err, AB_E_INVALID, "args", "the job has no user_id or email");
    f.user_id = (uint32_t)uid->via.u64;
    snprintf(f.email, sizeof f.email, "%.*s", (int)em->via.str.size, em->via.str.ptr);
    int rc = ab_settings_sync(f.db, err);
    if (rc == 0 && ab_settings_bool("GnuPG.key_fetching_disabled"))
        rc = ab_fail(err, AB_E_CONFLICT, "GnuPG.key_fetching_disabled",
                     "key fetching is turned off (GnuPG.key_fetching_disabled): nothing fetched");
    f.keyserver = ab_settings_get("GnuPG.keyserver");
    f.wkd_base = ab_settings_get("GnuPG.wkd_url");
    if (rc == 0 && f.keyserver && *f.keyserver && !s_http_url(f.keyserver))
        rc = ab_fail(err, AB_E_INVALID, "GnuPG.keyserver",
                     "GnuPG.keyserver must be an http:// or https:// URL without a path query");
    if (rc == 0 && f.wkd_base && *f.wkd_base && !s_http_url(f.wkd_base))
        rc = ab_fail(err, AB_E_INVALID, "GnuPG.wkd_url",
                     "GnuPG.wkd_url must be an http:// or https:// URL without a query");
    if (rc == 0)
        rc = s_check_user(&f, err); /* before the network: an early, cheap refusal */
    if (rc == 0)
        rc = s_lookup(&f, err);
    if (rc == 0)
        rc = s_check_user(&f, err); /* again: the fetch took a while */
    if (rc == 0)
        rc = s_store(&f, err);
    if (rc == 0)
        rc = s_audit(&f, err);
    if (rc == 0) {
        char msg[700];
        snprintf(msg, sizeof msg, "Key %s for %s stored (from %.200s)", f.fpr, f.email,
                 f.found->url);
        ab_job_progress(run, 100, msg);
    }
    free(f.keyserver);
    free(f.wkd_base);
    ab_mime_buf_free(&f.wkd.armour);
    ab_mime_buf_free(&f.hkp.armour);
    return rc;
}
