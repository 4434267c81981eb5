/* apply.c — see apply.h.
 *
 * A batch goes through two phases. Checks that need no database (frame size, envelope,
 * catalog, arguments) answer at once. The rest run in one transaction: authenticate,
 * authorise, look up command ids, run each command in its own SAVEPOINT, write the
 * batch's audit rows and command ids in bulk, COMMIT; only then are replies sent and
 * events published. A broken transaction (deadlock, lost connection) is retried whole;
 * after the last try every waiting command gets `unavailable`, and since nothing was
 * committed the client's retry with the same id is safe. */
#include "core/apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/idempotency.h"
#include "auth/identity.h"
#include "wire/log.h"
#include "core/outbox.h"
#include "auth/session.h"
#include "core/settings_cache.h"

#define TRIES 3
/* Durable events: most outbox rows one relay pass sends, and how often an idle loop looks
 * for rows an engine left behind (it died between its COMMIT and its relay). */
#define RELAY_MAX         512
#define RELAY_IDLE_MS     1000
#define RELAY_BACKOFF_MAX 30000 /* a bus that keeps failing: at most one try per 30 s */

typedef enum {
    S_ANSWERED, /* reply is final (sent in phase one, or set in phase two) */
    S_VALID,    /* passed the checks of phase one; waits for the transaction */
} s_state;

typedef struct {
    ab_inbound *in;
    ab_command_msg msg;
    bool decoded;
    const ab_command *cmd;
    s_state state;
    bool sent;
    int outcome; /* for the counters: the reply's ab_code, or AB_OUTCOME_REPLAYED */
    /* phase two */
    int who;     /* index into the batch's identities, -1 = none */
    int leader;  /* an earlier slot with the same (user, id), -1 = none */
    bool record; /* store the reply under its command id */
    /* One-time secrets in reply (ab_ctx's secret_at/len and secret2_at/len, shifted to
     * reply's bytes): the stored copy and repeats of the id get them masked. len 0: none. */
    size_t secret_at[2], secret_len[2];
    ab_cmdkey key;
    msgpack_sbuffer reply;
} s_slot;

/* How a command proves who sends it. */
typedef enum {
    CRED_NONE,    /* a public command (auth.login): nobody yet */
    CRED_KEY,     /* auth: an authkey */
    CRED_SESSION, /* session: a token from auth.login */
} s_cred;

typedef struct {
    s_cred kind;
    const char *auth; /* the credential's bytes */
    size_t len;
    const char *ip; /* a key limited to allowed_ips is judged per caller address */
    ab_identity who;
    ab_error err; /* code AB_OK when authenticated */
    /* when refused: the audit title naming the credential and why, the user it names (0:
     * nobody), and how many of the batch's commands carried it */
    char fail_title[200];
    uint32_t fail_user;
    uint32_t refused;
} s_auth;

struct ab_applier {
    ab_applier_options opt;
    ab_transport *t;
    ab_db *db;
    const ab_secret *secret;
    const ab_engine_info *info;
    ab_inbound *inbound;
    s_slot *slots;
    int n;
    s_auth *auth; /* one per distinct key of the batch: at most batch_max */
    int nauth;
    ab_key_batch *keys;     /* the batch's authkeys, read ahead (s_read_keys) */
    ab_authfail_undo *undo; /* what the transaction's ab_authfail_account changed */
    bool accounted;         /* ... and it has to be reverted if the transaction fails */
    ab_audit *audit;
    ab_events *events;
    uint64_t commands, batches;
    int64_t received_us;      /* monotonic: when recv handed over the current batch */
    int64_t relay_next_ms;    /* durable events: when the next outbox relay pass is due */
    int64_t relay_backoff_ms; /* 0, or the wait after the last failed pass */
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

ab_applier *ab_applier_new(const ab_applier_options *opt, ab_transport *t, ab_db **db,
                           const ab_secret *secret, const ab_engine_info *info)
{
    ab_applier *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->opt = *opt;
    a->t = t;
    a->db = *db;
    *db = NULL;
    a->secret = secret;
    a->info = info;
    a->inbound = calloc((size_t)opt->batch_max, sizeof *a->inbound);
    a->slots = calloc((size_t)opt->batch_max, sizeof *a->slots);
    a->auth = calloc((size_t)opt->batch_max, sizeof *a->auth);
    a->audit = ab_audit_new();
    a->events = ab_events_new();
    a->undo = ab_authfail_undo_new();
    if (!a->inbound || !a->slots || !a->auth || !a->audit || !a->events || !a->undo)
        ab_applier_destroy(&a);
    return a;
}

static void s_write_due_rows(ab_applier *a, bool all);

void ab_applier_destroy(ab_applier **ap)
{
    if (!ap || !*ap)
        return;
    ab_applier *a = *ap;
    if (a->db && a->undo && a->audit && a->opt.authfail)
        s_write_due_rows(a, true); /* the counts would die with the process */
    ab_db_close(&a->db);
    ab_audit_destroy(&a->audit);
    ab_events_destroy(&a->events);
    ab_authfail_undo_destroy(&a->undo);
    free(a->inbound);
    free(a->slots);
    free(a->auth);
    ab_key_batch_free(a->keys);
    free(a);
    *ap = NULL;
}

void ab_applier_stats(const ab_applier *a, uint64_t *commands, uint64_t *batches)
{
    *commands = a->commands;
    *batches = a->batches;
}

/* --- replies -------------------------------------------------------------------------- */

static const char *s_id(const s_slot *s)
{
    return s->msg.id;
}

static void s_set_error(s_slot *s, const ab_error *err)
{
    msgpack_sbuffer_clear(&s->reply);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->reply, msgpack_sbuffer_write);
    ab_reply_pack_error(&pk, s_id(s), err);
    s->state = S_ANSWERED;
    s->outcome = (int)err->code;
    AB_DEBUG("reply %s %s: %s %s", s_id(s), s->msg.type, ab_code_name(err->code), err->message);
}

static void s_set_ok(s_slot *s, const msgpack_sbuffer *result)
{
    msgpack_sbuffer_clear(&s->reply);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->reply, msgpack_sbuffer_write);
    ab_reply_begin_ok(&pk, s_id(s));
    msgpack_sbuffer_write(&s->reply, result->data, result->size);
    s->state = S_ANSWERED;
    s->outcome = AB_OK;
}

static void s_set_stored(s_slot *s, char *stored, size_t len)
{
    msgpack_sbuffer_clear(&s->reply);
    msgpack_sbuffer_write(&s->reply, stored, len);
    s->state = S_ANSWERED;
    s->outcome = AB_OUTCOME_REPLAYED;
}

/* Every command is answered here exactly once: count it (per loop, no lock). */
static void s_send(ab_applier *a, s_slot *s)
{
    s->sent = true;
    ab_metrics_count(a->opt.metrics, s->cmd, s->outcome, s_monotonic_us() - a->received_us);
    if (a->t->ops->reply(a->t, s->in, s->reply.data, s->reply.size) < 0)
        AB_WARN("reply to %s lost; the client will retry with the same id", s_id(s));
}

/* --- phase one: checks without the database ------------------------------------------ */

static void s_check(ab_applier *a, s_slot *s)
{
    ab_error err;
    ab_error_clear(&err);
    if (s->in->body_len > a->opt.max_frame) {
        ab_fail(&err, AB_E_INVALID, "frame", "the command is %zu bytes; the limit is %zu",
                s->in->body_len, a->opt.max_frame);
        s_set_error(s, &err);
        return;
    }
    if (ab_command_decode(s->in->body, s->in->body_len, &s->msg, &err) < 0) {
        s_set_error(s, &err);
        return;
    }
    s->decoded = true;
    snprintf(s->msg.ip, sizeof s->msg.ip, "%s", s->in->ip);
    /* An address that keeps failing to authenticate is refused before any database work. */
    if (ab_authfail_throttled(a->opt.authfail, s->msg.ip, a->received_us / 1000, &err) < 0) {
        s_set_error(s, &err);
        return;
    }
    s->cmd = ab_catalog_find(s->msg.type, strlen(s->msg.type));
    if (!s->cmd) {
        ab_fail(&err, AB_E_INVALID, "type", "unknown command type '%s'", s->msg.type);
    } else if (ab_catalog_validate(s->cmd, s->msg.args, &err) == 0 &&
               s->cmd->permission != AB_PERM_PUBLIC) {
        if (!s->msg.auth && !s->msg.session)
            ab_fail(&err, AB_E_UNAUTHENTICATED, "auth",
                    "auth (an authkey) or session (from auth login) is required");
        else if (s->msg.auth && s->msg.session)
            ab_fail(&err, AB_E_INVALID, "session", "send auth or session, not both");
    }
    if (err.code != AB_OK)
        s_set_error(s, &err);
    else
        s->state = S_VALID;
}

/* --- phase two: inside the transaction ------------------------------------------------ */

/* A public command ignores any credential it carries: it runs as nobody. */
static s_cred s_cred_of(const s_slot *s, const char **cred, size_t *len)
{
    *cred = "";
    *len = 0;
    if (s->cmd->permission == AB_PERM_PUBLIC)
        return CRED_NONE;
    if (s->msg.session) {
        *cred = s->msg.session;
        *len = s->msg.session_len;
        return CRED_SESSION;
    }
    *cred = s->msg.auth;
    *len = s->msg.auth_len;
    return CRED_KEY;
}

static int s_check_cred(ab_applier *a, s_auth *c, char *title, size_t tlen, uint32_t *fail_user)
{
    switch (c->kind) {
    case CRED_NONE:
        c->who.via = AB_VIA_NONE;
        return 0;
    case CRED_SESSION:
        return ab_session_authenticate(a->db, a->secret, c->auth, c->len, &c->who, title, tlen,
                                       fail_user, &c->err);
    default:
        return ab_authenticate(a->db, a->secret, a->keys, c->auth, c->len, c->ip, &c->who, title,
                               tlen, fail_user, &c->err);
    }
}

static s_auth *s_authenticate(ab_applier *a, const s_slot *s, int *index, ab_error *fault)
{
    const char *cred;
    size_t len;
    s_cred kind = s_cred_of(s, &cred, &len);
    for (int i = 0; i < a->nauth; i++)
        if (a->auth[i].kind == kind && a->auth[i].len == len &&
            memcmp(a->auth[i].auth, cred, len) == 0 && strcmp(a->auth[i].ip, s->msg.ip) == 0) {
            *index = i;
            return &a->auth[i];
        }
    s_auth *c = &a->auth[a->nauth];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->auth = cred;
    c->len = len;
    c->ip = s->msg.ip;
    /* A refusal's audit row is ab_authfail_account's to write (s_account_failures). */
    if (s_check_cred(a, c, c->fail_title, sizeof c->fail_title, &c->fail_user) < 0 &&
        c->err.code != AB_E_UNAUTHENTICATED) {
        *fault = c->err;
        return NULL;
    }
    *index = a->nauth++;
    return c;
}

/* MISP.log_auth: an audit row for each command authenticated by an authkey, naming the key
 * by its first and last four characters (never the key), or by a session (by its id). */
static void s_log_auth(ab_applier *a, const s_slot *s, const ab_identity *who)
{
    char title[160];
    if (who->via == AB_VIA_SESSION)
        snprintf(title, sizeof title, "Successful authentication using session %llu (%s)",
                 (unsigned long long)who->session_id, s->msg.type);
    else
        snprintf(title, sizeof title, "Successful authentication using authkey %.4s…%.4s (%s)",
                 s->msg.auth, s->msg.auth + s->msg.auth_len - 4, s->msg.type);
    ab_actor actor = {who->user_id, who->email, who->org_name, s->msg.ip};
    ab_audit_add(a->audit, &actor, "User", who->user_id, "auth", title, NULL);
}

/* Authenticate and authorise every valid slot; mark duplicates inside the batch. */
/* Read the rows of every authkey the batch's valid commands carry in a few statements
 * (a batch signed with many keys would otherwise cost a round trip per key). */
static int s_read_keys(ab_applier *a, ab_error *fault)
{
    const char *keys[a->n > 0 ? a->n : 1];
    size_t lens[a->n > 0 ? a->n : 1];
    size_t n = 0;
    for (int i = 0; i < a->n; i++) {
        const char *cred;
        size_t len;
        if (a->slots[i].state != S_VALID || s_cred_of(&a->slots[i], &cred, &len) != CRED_KEY)
            continue;
        size_t j = 0;
        while (j < n && !(lens[j] == len && memcmp(keys[j], cred, len) == 0))
            j++;
        if (j == n) {
            keys[n] = cred;
            lens[n++] = len;
        }
    }
    ab_key_batch_free(a->keys);
    a->keys = NULL;
    return n > 1 ? ab_key_batch_read(a->db, a->secret, keys, lens, n, &a->keys, fault) : 0;
}

static int s_admit(ab_applier *a, ab_error *fault)
{
    a->nauth = 0;
    if (s_read_keys(a, fault) < 0)
        return -1;
    for (int i = 0; i < a->n; i++) {
        s_slot *s = &a->slots[i];
        if (s->state != S_VALID)
            continue;
        s_auth *c = s_authenticate(a, s, &s->who, fault);
        if (!c)
            return -1;
        ab_error err;
        if (c->err.code == AB_OK && c->kind != CRED_NONE && ab_settings_bool("MISP.log_auth"))
            s_log_auth(a, s, &c->who);
        if (c->err.code != AB_OK) {
            c->refused++;
            s_set_error(s, &c->err);
        } else if (ab_authorise(s->cmd, &c->who, &err) < 0 ||
                   ab_session_may_run(s->cmd, s->msg.args, &c->who, &err) < 0) {
            s_set_error(s, &err);
        } else if (s->cmd->writes) {
            s->key.user_id = c->who.user_id;
            s->key.cmd_id = s->msg.id;
            ab_cmdkey_digest(&s->key, s->msg.type, s->msg.args_raw, s->msg.args_raw_len);
            /* Keyed: arguments may hold a password (user.add, user.change_pw), and a plain
             * SHA-256 kept in command_ids would let anyone who reads the table test guesses
             * of it at full speed. */
            uint8_t plain[AB_DIGEST_LEN];
            memcpy(plain, s->key.digest, sizeof plain);
            ab_secret_digest(a->secret, plain, sizeof plain, s->key.digest);
        }
    }
    return 0;
}

/* Earlier slot of this batch with the same (user, id), or -1. */
static int s_find_leader(const ab_applier *a, int i)
{
    const s_slot *s = &a->slots[i];
    for (int j = 0; j < i; j++) {
        const s_slot *o = &a->slots[j];
        if (o->cmd && o->cmd->writes && o->key.cmd_id && o->key.user_id == s->key.user_id &&
            strcmp(o->key.cmd_id, s->key.cmd_id) == 0)
            return j;
    }
    return -1;
}

static void s_conflict_id(s_slot *s)
{
    ab_error err;
    ab_fail(&err, AB_E_CONFLICT, "id",
            "command id %s was already used with other arguments; use a new id", s->msg.id);
    s_set_error(s, &err);
}

/* Answer re-sent ids from the store; link in-batch repeats to their first occurrence. */
static int s_replay(ab_applier *a, ab_error *fault)
{
    ab_cmdkey keys[a->n > 0 ? a->n : 1];
    int idx[a->n > 0 ? a->n : 1];
    int nk = 0;
    for (int i = 0; i < a->n; i++) {
        s_slot *s = &a->slots[i];
        s->leader = -1;
        s->secret_len[0] = s->secret_len[1] = 0;
        if (s->state != S_VALID || !s->cmd->writes)
            continue;
        int l = s_find_leader(a, i);
        if (l >= 0) {
            if (memcmp(a->slots[l].key.digest, s->key.digest, AB_DIGEST_LEN) == 0)
                s->leader = l;
            else
                s_conflict_id(s);
            continue;
        }
        keys[nk] = s->key;
        idx[nk++] = i;
    }
    ab_seen seen[nk > 0 ? nk : 1];
    char *stored[nk > 0 ? nk : 1];
    size_t lens[nk > 0 ? nk : 1];
    if (nk && ab_idem_lookup(a->db, keys, (size_t)nk, seen, stored, lens, fault) < 0)
        return -1;
    for (int k = 0; k < nk; k++) {
        s_slot *s = &a->slots[idx[k]];
        if (seen[k] == AB_SEEN_SAME)
            s_set_stored(s, stored[k], lens[k]);
        else if (seen[k] == AB_SEEN_CONFLICT)
            s_conflict_id(s);
        free(stored[k]);
    }
    return 0;
}

/* An error that leaves nothing changed does not use up the command's id. */
static bool s_recordable(ab_code code)
{
    return code == AB_OK || code == AB_E_CONFLICT;
}

/* Note where the handler's one-time secrets are in the reply (see s_slot). */
static void s_keep_secrets(s_slot *s, const ab_ctx *ctx, const msgpack_sbuffer *result)
{
    size_t at[2] = {ctx->secret_at, ctx->secret2_at}, len[2] = {ctx->secret_len, ctx->secret2_len};
    for (int i = 0; i < 2; i++)
        if (len[i] > 0 && at[i] + len[i] <= result->size) {
            s->secret_len[i] = len[i];
            s->secret_at[i] = s->reply.size - result->size + at[i];
        }
}

/* Mask the one-time secrets of s in buf (a copy of its reply). */
static void s_mask_secrets(const s_slot *s, char *buf)
{
    for (int i = 0; i < 2; i++)
        if (s->secret_len[i] > 0)
            memset(buf + s->secret_at[i], '*', s->secret_len[i]);
}

/* Run one command. Returns -1 only when the transaction itself broke. */
static int s_run(ab_applier *a, s_slot *s, msgpack_sbuffer *result, ab_error *fault)
{
    const ab_identity *who = &a->auth[s->who].who;
    ab_ctx ctx = {.engine = a->info,
                  .db = a->db,
                  .who = who,
                  .ip = s->msg.ip,
                  .via_http = s->msg.via_http,
                  .cmd = s->cmd,
                  .args = s->msg.args,
                  .now_ms = s_now_ms(),
                  .audit = a->audit,
                  .events = a->events};
    bool savepoint = s->cmd->shape == AB_WRITES_MANY;
    size_t audit_mark = ab_audit_count(a->audit), event_mark = ab_events_mark(a->events);
    uint64_t writes_before = ab_db_writes(a->db);
    ab_error err;
    ab_error_clear(&err);
    if (savepoint && ab_db_exec(a->db, "SAVEPOINT cmd", fault) < 0)
        return -1;
    msgpack_sbuffer_clear(result);
    msgpack_packer pk;
    msgpack_packer_init(&pk, result, msgpack_sbuffer_write);
    int rc = ab_handler_for(s->cmd)(&ctx, &pk, &err);
    if (rc == 0) {
        s_set_ok(s, result);
        s->record = s->cmd->writes;
        s_keep_secrets(s, &ctx, result);
        return 0;
    }
    if (ab_db_batch_broken(a->db)) {
        *fault = err;
        return -1;
    }
    if (!savepoint && ab_db_writes(a->db) != writes_before) {
        /* A one-write handler failed after its write: without a savepoint only the
         * whole batch can be undone. Never expected; retried as a broken batch. */
        AB_ERROR("engine: %s failed after writing; rolling the batch back", s->cmd->type);
        *fault = err;
        return -1;
    }
    ab_audit_rewind(a->audit, audit_mark);
    ab_events_rewind(a->events, event_mark);
    if (savepoint && ab_db_exec(a->db, "ROLLBACK TO SAVEPOINT cmd", fault) < 0)
        return -1;
    /* What the failure itself must leave (a failed login's traces), outside the savepoint. */
    if (savepoint && ctx.after_failure && ctx.after_failure(&ctx, &err, fault) < 0)
        return -1;
    s_set_error(s, &err);
    s->record = s->cmd->writes && s_recordable(err.code);
    return 0;
}

static int s_run_all(ab_applier *a, ab_error *fault)
{
    msgpack_sbuffer result;
    msgpack_sbuffer_init(&result);
    int rc = 0;
    for (int i = 0; i < a->n && rc == 0; i++) {
        s_slot *s = &a->slots[i];
        if (s->state == S_VALID && s->leader < 0)
            rc = s_run(a, s, &result, fault);
    }
    msgpack_sbuffer_destroy(&result);
    for (int i = 0; i < a->n && rc == 0; i++) { /* repeats answer as their first did */
        s_slot *s = &a->slots[i];
        if (s->state == S_VALID && s->leader >= 0) {
            const s_slot *l = &a->slots[s->leader];
            s_set_stored(s, l->reply.data, l->reply.size);
            s_mask_secrets(l, s->reply.data); /* the secret was for the first only */
        }
    }
    return rc;
}

static int s_record_ids(ab_applier *a, ab_error *fault)
{
    ab_cmdkey keys[a->n > 0 ? a->n : 1];
    const char *bodies[a->n > 0 ? a->n : 1];
    size_t lens[a->n > 0 ? a->n : 1];
    char *masked[a->n > 0 ? a->n : 1];
    size_t nk = 0;
    int rc = 0;
    for (int i = 0; i < a->n; i++) {
        s_slot *s = &a->slots[i];
        if (!s->record)
            continue;
        keys[nk] = s->key;
        bodies[nk] = s->reply.data;
        masked[nk] = NULL;
        if (s->secret_len[0] > 0 || s->secret_len[1] > 0) { /* store it with them masked */
            masked[nk] = malloc(s->reply.size);
            if (!masked[nk]) {
                rc = ab_fail(fault, AB_E_INTERNAL, NULL, "out of memory");
                break;
            }
            memcpy(masked[nk], s->reply.data, s->reply.size);
            s_mask_secrets(s, masked[nk]);
            bodies[nk] = masked[nk];
        }
        lens[nk++] = s->reply.size;
    }
    if (rc == 0)
        rc = ab_idem_record(a->db, keys, bodies, lens, nk, fault);
    for (size_t i = 0; i < nk; i++)
        free(masked[i]);
    return rc;
}

/* Reset what a failed try of phase two may have set, keeping phase one's answers. */
static void s_reset_phase_two(ab_applier *a, const s_state *before)
{
    for (int i = 0; i < a->n; i++) {
        a->slots[i].state = before[i];
        a->slots[i].record = false;
        a->slots[i].secret_len[0] = a->slots[i].secret_len[1] = 0;
    }
    ab_audit_rewind(a->audit, 0);
    ab_events_clear(a->events);
}

static bool s_is_wake(const ab_event *ev);
static void s_reconnect(ab_applier *a);

/* Durable events (t->durable_events): the batch's events, but the notices for daemons,
 * go to the outbox inside the transaction; ab_outbox_relay sends them after COMMIT. */
static int s_write_outbox(ab_applier *a, ab_error *fault)
{
    size_t n = ab_events_count(a->events), k = 0;
    if (!a->t->durable_events || n == 0)
        return 0;
    const ab_event **keep = malloc(n * sizeof *keep);
    if (!keep)
        return ab_fail(fault, AB_E_INTERNAL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (!s_is_wake(ab_events_at(a->events, i)))
            keep[k++] = ab_events_at(a->events, i);
    int rc = ab_outbox_write(a->db, keep, k, fault);
    free(keep);
    return rc;
}

/* The batch's refused credentials go to the table of failed authentications, which queues
 * the auth_fail rows that are due (authfail.h: at most one per source and window) and
 * throttles addresses that keep failing. Also writes the rows whose window has ended. */
static int s_account_failures(ab_applier *a, bool flush, ab_error *fault)
{
    ab_authfail_note notes[a->nauth > 0 ? a->nauth : 1];
    size_t n = 0;
    for (int i = 0; i < a->nauth; i++) {
        const s_auth *c = &a->auth[i];
        if (c->refused > 0)
            notes[n++] =
                (ab_authfail_note){c->ip, c->fail_user, c->who.email, c->fail_title, c->refused};
    }
    ab_authfail_limits lim;
    ab_authfail_limits_now(&lim);
    int64_t now = s_monotonic_us() / 1000;
    if ((flush ? ab_authfail_flush(a->opt.authfail, &lim, now, a->audit, a->undo)
               : ab_authfail_account(a->opt.authfail, &lim, notes, n, now, a->audit, a->undo)) < 0)
        return ab_fail(fault, AB_E_INTERNAL, NULL, "out of memory");
    a->accounted = true;
    return 0;
}

/* A transaction that did not commit gives back what it counted (authfail.h). */
static void s_rollback(ab_applier *a)
{
    ab_error ignored;
    if (!ab_db_connection_lost(a->db))
        ab_db_exec(a->db, "ROLLBACK", &ignored);
    if (a->accounted)
        ab_authfail_revert(a->opt.authfail, a->undo);
    a->accounted = false;
}

static int s_transaction(ab_applier *a, ab_error *fault)
{
    a->accounted = false;
    /* ab_settings_sync: one primary-key read; a setting changed by an earlier batch (of any
     * engine) applies from this batch on (MISP.log_client_ip, MISP.log_auth, debug). */
    if (ab_db_exec(a->db, "START TRANSACTION", fault) < 0 || ab_settings_sync(a->db, fault) < 0 ||
        s_admit(a, fault) < 0 || s_replay(a, fault) < 0 || s_run_all(a, fault) < 0 ||
        s_account_failures(a, false, fault) < 0 || ab_audit_flush(a->audit, a->db, fault) < 0 ||
        s_record_ids(a, fault) < 0 || s_write_outbox(a, fault) < 0 ||
        ab_db_exec(a->db, "COMMIT", fault) < 0) {
        s_rollback(a);
        return -1;
    }
    a->accounted = false;
    return 0;
}

/* auth_fail rows that wait for the end of their window while no batch comes to carry them
 * (the flood stopped, or every command of it is refused in phase one): a transaction of
 * their own, from whichever loop looks first. At a stop (all), every count not yet in a
 * row. */
static void s_write_due_rows(ab_applier *a, bool all)
{
    if (!all && !ab_authfail_due(a->opt.authfail, s_monotonic_us() / 1000))
        return;
    if (!a->db)
        s_reconnect(a);
    if (!a->db)
        return;
    ab_error err;
    a->nauth = 0;
    a->accounted = false;
    if (ab_db_exec(a->db, "START TRANSACTION", &err) < 0 || ab_settings_sync(a->db, &err) < 0 ||
        s_account_failures(a, all, &err) < 0 || ab_audit_flush(a->audit, a->db, &err) < 0 ||
        ab_db_exec(a->db, "COMMIT", &err) < 0) {
        s_rollback(a);
        ab_audit_rewind(a->audit, 0);
        AB_WARN("engine: auth_fail rows not written now (the next batch carries them): %s",
                err.message);
        if (ab_db_connection_lost(a->db))
            ab_db_close(&a->db);
        return;
    }
    a->accounted = false;
}

static void s_reconnect(ab_applier *a)
{
    char msg[512];
    ab_db_close(&a->db);
    a->db = ab_db_open(a->opt.db_dsn, msg, sizeof msg);
    if (!a->db)
        AB_ERROR("engine: database unreachable: %s", msg);
    else
        AB_INFO("engine: reconnected to the database");
}

/* Apply the batch's waiting commands in one transaction; when it cannot commit, every
 * waiting command is answered with the fault (*redeliver: a transient one, `unavailable`). */
static void s_phase_two(ab_applier *a, bool *redeliver)
{
    s_state before[a->n > 0 ? a->n : 1];
    for (int i = 0; i < a->n; i++)
        before[i] = a->slots[i].state;
    ab_error fault;
    ab_error_clear(&fault);
    for (int attempt = 1; attempt <= TRIES; attempt++) {
        if (!a->db)
            s_reconnect(a);
        if (a->db && s_transaction(a, &fault) == 0)
            return;
        AB_WARN("engine: batch of %d failed (try %d of %d): %s", a->n, attempt, TRIES,
                a->db ? fault.message : "no database connection");
        s_reset_phase_two(a, before);
        bool transient = !a->db || ab_db_batch_broken(a->db) || fault.code == AB_E_UNAVAILABLE;
        if (a->db && ab_db_connection_lost(a->db))
            ab_db_close(&a->db);
        if (!transient)
            break; /* a fault that trying again will not cure: say so now */
    }
    if (fault.code != AB_E_INTERNAL) {
        ab_fail(&fault, AB_E_UNAVAILABLE, NULL,
                "the database could not apply the command now; retry with the same id");
        fault.retry_after = 1;
    }
    for (int i = 0; i < a->n; i++)
        if (a->slots[i].state == S_VALID)
            s_set_error(&a->slots[i], &fault);
    *redeliver = fault.code == AB_E_UNAVAILABLE;
}

static bool s_ends_with(const char *s, const char *tail)
{
    size_t len = strlen(s), n = strlen(tail);
    return len > n && strcmp(s + len - n, tail) == 0;
}

/* A notice for daemons: a queue's wake-up, a job handed to a worker, a worker's control
 * notice (pause, stop). */
static bool s_is_wake(const ab_event *ev)
{
    return strncmp(ev->topic, "wake.", 5) == 0 || s_ends_with(ev->topic, ".assign") ||
           s_ends_with(ev->topic, ".control");
}

/* Publish the batch's notices for daemons (wake = true) or its other events (false; on a
 * transport with durable events they are in the outbox: relay it). */
static void s_publish(ab_applier *a, bool wake)
{
    bool durable = a->t->durable_events && !wake;
    for (size_t i = 0; i < ab_events_count(a->events) && !durable; i++) {
        const ab_event *ev = ab_events_at(a->events, i);
        if (s_is_wake(ev) == wake)
            a->t->ops->publish(a->t, ev->topic, ev->body.data, ev->body.size);
    }
    if (wake)
        return;
    if (durable && ab_events_count(a->events) > 0 && a->relay_backoff_ms == 0)
        a->relay_next_ms = 0; /* relay now */
    ab_events_clear(a->events);
}

/* The next relay pass after a failed one: 1 s, doubling up to RELAY_BACKOFF_MAX. */
static void s_relay_later(ab_applier *a, int64_t now)
{
    a->relay_backoff_ms = a->relay_backoff_ms ? a->relay_backoff_ms * 2 : RELAY_IDLE_MS;
    if (a->relay_backoff_ms > RELAY_BACKOFF_MAX)
        a->relay_backoff_ms = RELAY_BACKOFF_MAX;
    a->relay_next_ms = now + a->relay_backoff_ms;
}

/* Durable events: relay the outbox after a batch that wrote to it, and now and then when
 * idle for rows a dead engine left (reconnecting an idle loop that lost its database).
 * A failed pass leaves them for the next, which comes after a growing back-off: each pass
 * waits for the bus, and commands must go on. */
static void s_relay(ab_applier *a)
{
    int64_t now = s_now_ms();
    if (!a->t->durable_events || now < a->relay_next_ms)
        return;
    if (!a->db)
        s_reconnect(a);
    if (!a->db) {
        s_relay_later(a, now);
        return;
    }
    ab_error err;
    int n;
    while ((n = ab_outbox_relay(a->db, a->t, RELAY_MAX, &err)) == RELAY_MAX)
        ;
    if (n >= 0) {
        a->relay_backoff_ms = 0;
        a->relay_next_ms = now + RELAY_IDLE_MS;
        return;
    }
    s_relay_later(a, now);
    AB_WARN("engine: outbox relay: %s (the events stay in the outbox; next try in %lld ms)",
            err.message, (long long)a->relay_backoff_ms);
    if (ab_db_connection_lost(a->db))
        ab_db_close(&a->db);
}

int ab_applier_step(ab_applier *a, int timeout_ms)
{
    int n = a->t->ops->recv(a->t, a->inbound, a->opt.batch_max, timeout_ms);
    if (n <= 0) {
        if (n == 0) {
            s_write_due_rows(a, false);
            s_relay(a);
        }
        return n;
    }
    a->n = n;
    a->received_us = s_monotonic_us();
    bool need_db = false, redeliver = false;
    for (int i = 0; i < n; i++) {
        s_slot *s = &a->slots[i];
        memset(s, 0, sizeof *s);
        msgpack_sbuffer_init(&s->reply);
        s->in = &a->inbound[i];
        s->who = -1;
        s->leader = -1;
        s_check(a, s);
        if (s->state == S_ANSWERED)
            s_send(a, s); /* answered without the database: no reason to wait */
        else
            need_db = true;
    }
    if (need_db) {
        s_phase_two(a, &redeliver);
        s_publish(a, true); /* workers first: their pick-up starts while replies go out */
        for (int i = 0; i < n; i++)
            if (!a->slots[i].sent)
                s_send(a, &a->slots[i]);
        s_publish(a, false);
    }
    for (int i = 0; i < n; i++) {
        if (a->slots[i].decoded)
            ab_command_msg_release(&a->slots[i].msg);
        msgpack_sbuffer_destroy(&a->slots[i].reply);
    }
    /* Only now, with the batch committed, may a durable intake forget its commands. */
    if (a->t->ops->done)
        a->t->ops->done(a->t, a->inbound, n, redeliver);
    if (!need_db)
        s_write_due_rows(a, false);
    s_relay(a);
    a->t->ops->release(a->t, a->inbound, n);
    a->commands += (uint64_t)n;
    a->batches++;
    return n;
}
