/* misp.c — MISP's admin REST routes on top of adminbus commands.
 *
 * The route table at the end says, for each route: the methods it takes, its path, the
 * catalog's command it runs, which argument the path's {} segment is, how the request's
 * body and query string become the other arguments (MISP's field names to the command's),
 * and how the result becomes MISP's answer (a record wrapped by model name, {"User": {…}},
 * a list of them, or MISP's "saved" body). The few routes that run several commands, or
 * refuse in their own words, have a function of their own instead. Which fields exist, who
 * may do what and what is valid is the engine's business: unknown fields go through as sent
 * and come back as the engine's precise `invalid` (field = the name). docs/architecture.md
 * ("HTTP shim") shows the routes. */
#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "http/http.h"

/* --- helpers ---------------------------------------------------------------------------------- */

/* A command of the catalog by its id (schemas/commands.def): a missing one does not compile. */
#define CMD(id) (&ab_catalog[AB_CMD_##id])

/* Run cmd with args (stolen; NULL: none) as the caller; the result (a new reference), or
 * NULL with the error response set on r, as MISP refuses a save when cmd writes. what is
 * MISP's model, for the refusal's name ("Invalid User"). */
static json_t *s_run(hs_req *r, const ab_command *cmd, json_t *args, const char *what)
{
    hs_reply rep;
    hs_bus_call(r->srv->bus, cmd->type, args, r->auth, &rep);
    json_decref(args);
    if (rep.ok) {
        json_t *res = rep.result;
        rep.result = NULL;
        return res;
    }
    hs_reply_error(r, &rep, cmd->writes, what);
    hs_reply_release(&rep);
    return NULL;
}

/* The request's fields as a new object: the body unwrapped from {"Model": {…}} when it is
 * wrapped (MISP takes both), or an empty object. */
static json_t *s_fields(hs_req *r, const char *model)
{
    json_t *b = r->body;
    if (!b)
        return json_object();
    json_t *inner = json_object_get(b, model);
    if (json_object_size(b) == 1 && json_is_object(inner))
        b = inner;
    return json_deep_copy(b);
}

static void s_rename(json_t *o, const char *from, const char *to)
{
    json_t *v = json_object_get(o, from);
    if (!v)
        return;
    json_object_set(o, to, v);
    json_object_del(o, from);
}

static void s_query_int(hs_req *r, json_t *args, const char *name)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (v)
        json_object_set_new(args, name, json_string(v));
}

/* Unix milliseconds as MISP's "YYYY-MM-DD HH:MM:SS" (UTC); null stays null. */
static json_t *s_misp_time(const json_t *ms)
{
    if (!json_is_integer(ms))
        return json_null();
    time_t t = (time_t)(json_integer_value(ms) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return json_string(buf);
}

static void s_time_field(json_t *o, const char *from, const char *to)
{
    json_t *v = json_object_get(o, from);
    if (!v)
        return;
    json_object_set_new(o, to, s_misp_time(v));
    if (strcmp(from, to) != 0)
        json_object_del(o, from);
}

/* Unix milliseconds as unix seconds (MISP's users keep seconds); null becomes 0. */
static void s_seconds_field(json_t *o, const char *from, const char *to)
{
    json_t *v = json_object_get(o, from);
    if (!v)
        return;
    json_int_t s = json_is_integer(v) ? json_integer_value(v) / 1000 : 0;
    json_object_set_new(o, to, json_integer(s));
    if (strcmp(from, to) != 0)
        json_object_del(o, from);
}

static json_t *s_wrap(const char *model, json_t *record)
{
    json_t *o = json_object();
    json_object_set_new(o, model, record);
    return o;
}

/* Each item of result.items through make, as a JSON array. */
static json_t *s_items(json_t *result, json_t *(*make)(json_t *item))
{
    json_t *out = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(result, "items"), i, it)
        json_array_append_new(out, make(it));
    return out;
}

/* MISP's success body for a save or a delete. */
static void s_saved(hs_req *r, const char *msg, json_t *id)
{
    r->json = json_pack("{s:b, s:b, s:s, s:s, s:s}", "saved", 1, "success", 1, "name", msg,
                        "message", msg, "url", r->path);
    if (id)
        json_object_set(r->json, "id", id);
}

/* --- records ---------------------------------------------------------------------------------- */

static json_t *s_user_record(json_t *u)
{
    json_t *o = json_deep_copy(u);
    json_object_del(o, "org");
    json_object_del(o, "role");
    s_seconds_field(o, "created", "date_created");
    s_seconds_field(o, "modified", "date_modified");
    s_seconds_field(o, "last_login", "last_login");
    return o;
}

/* {"User": …, "Role": {id, name}, "Organisation": {id, name}} as MISP's user views give. */
static json_t *s_user_view(json_t *u)
{
    json_t *o = s_wrap("User", s_user_record(u));
    json_object_set_new(o, "Role",
                        json_pack("{s:O, s:O}", "id", json_object_get(u, "role_id"), "name",
                                  json_object_get(u, "role")));
    json_object_set_new(o, "Organisation",
                        json_pack("{s:O, s:O}", "id", json_object_get(u, "org_id"), "name",
                                  json_object_get(u, "org")));
    return o;
}

static json_t *s_org_record(json_t *g)
{
    json_t *o = json_deep_copy(g);
    s_time_field(o, "date_created", "date_created");
    s_time_field(o, "date_modified", "date_modified");
    return o;
}

static json_t *s_org_view(json_t *g)
{
    return s_wrap("Organisation", s_org_record(g));
}

static int s_level_of(const char *name)
{
    for (int i = 0; name && ab_role_levels[i]; i++)
        if (strcmp(ab_role_levels[i], name) == 0)
            return i;
    return -1;
}

/* MISP's Role: the level as permission "0".."3" and its four flags, then perm_<name> for
 * each extra flag. */
static json_t *s_role_record(json_t *role)
{
    json_t *o = json_deep_copy(role);
    int level = s_level_of(json_string_value(json_object_get(role, "permission")));
    char num[16];
    snprintf(num, sizeof num, "%d", level < 0 ? 0 : level);
    json_object_set_new(o, "permission", json_string(num));
    json_object_set_new(o, "permission_description",
                        json_string(level < 0 ? "" : ab_role_levels[level]));
    json_object_set_new(o, "perm_add", json_boolean(level >= 1));
    json_object_set_new(o, "perm_modify", json_boolean(level >= 1));
    json_object_set_new(o, "perm_modify_org", json_boolean(level >= 2));
    json_object_set_new(o, "perm_publish", json_boolean(level >= 3));
    json_t *perms = json_object_get(role, "perms");
    for (int i = 0; ab_role_perms[i]; i++) {
        bool has = false;
        size_t k;
        json_t *p;
        json_array_foreach(perms, k, p) has =
            has || !strcmp(json_string_value(p), ab_role_perms[i]);
        char key[64];
        snprintf(key, sizeof key, "perm_%s", ab_role_perms[i]);
        json_object_set_new(o, key, json_boolean(has));
    }
    json_object_del(o, "perms");
    s_time_field(o, "created", "created");
    s_time_field(o, "modified", "modified");
    return o;
}

static json_t *s_role_view(json_t *role)
{
    return s_wrap("Role", s_role_record(role));
}

static json_t *s_log_view(json_t *l)
{
    json_t *o = json_deep_copy(l);
    s_time_field(o, "created", "created");
    return s_wrap("Log", o);
}

static json_t *s_job_view(json_t *j)
{
    json_t *o = json_deep_copy(j);
    s_rename(o, "queue", "worker");
    s_rename(o, "type", "job_type");
    s_rename(o, "input", "job_input");
    s_time_field(o, "date_created", "date_created");
    s_time_field(o, "date_modified", "date_modified");
    s_time_field(o, "date_finished", "date_finished");
    return s_wrap("Job", o);
}

static json_t *s_task_view(json_t *t)
{
    return s_wrap("Task", json_deep_copy(t));
}

/* MISP's setting levels by our priority names. */
static json_t *s_setting_record(json_t *s)
{
    static const char *const levels[] = {"critical", "recommended", "optional", "deprecated", NULL};
    json_t *o = json_deep_copy(s);
    const char *p = json_string_value(json_object_get(s, "priority"));
    for (int i = 0; p && levels[i]; i++)
        if (!strcmp(p, levels[i]))
            json_object_set_new(o, "level", json_integer(i));
    s_rename(o, "name", "setting");
    s_rename(o, "secret", "redacted");
    s_rename(o, "error", "errorMessage");
    return o;
}

/* --- users -------------------------------------------------------------------------------------
 */

/* MISP's User fields → user.add / user.edit arguments; on add, change_pw → no_password_change. */
static json_t *s_user_args(hs_req *r, bool add)
{
    json_t *a = s_fields(r, "User");
    json_object_del(a, "id"); /* the route names the user */
    s_rename(a, "org_id", "org");
    s_rename(a, "role_id", "role");
    json_t *cpw = json_object_get(a, "change_pw");
    if (cpw && add) {
        bool change = json_is_true(cpw) || (json_is_integer(cpw) && json_integer_value(cpw)) ||
                      (json_is_string(cpw) && strcmp(json_string_value(cpw), "0") != 0);
        json_object_set_new(a, "no_password_change", json_boolean(!change));
        json_object_del(a, "change_pw");
    }
    return a;
}

static json_t *s_user_add_args(hs_req *r)
{
    return s_user_args(r, true);
}

static json_t *s_user_edit_args(hs_req *r)
{
    return s_user_args(r, false);
}

static json_t *s_users_query(hs_req *r)
{
    json_t *a = json_object();
    s_query_int(r, a, "limit");
    s_query_int(r, a, "page");
    s_query_int(r, a, "org");
    s_query_int(r, a, "role");
    return a;
}

/* GET /users/view/me: who the key belongs to, MISP's handshake. The role's flags come from
 * role.view (any user may read roles); the full user row from user.view when the caller
 * may read it (admins), else what whoami says. */
static void s_users_me(hs_req *r)
{
    json_t *me = s_run(r, CMD(AUTH_WHOAMI), NULL, "User");
    if (!me)
        return;
    json_t *user = json_object_get(me, "user"), *org = json_object_get(me, "org");
    json_t *role_id = json_object_get(json_object_get(me, "role"), "id");
    json_t *role = s_run(r, CMD(ROLE_VIEW), json_pack("{s:O}", "role", role_id), "Role");
    if (!role) {
        json_decref(me);
        return;
    }
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(user, "id")));
    hs_reply rep;
    json_t *args = json_pack("{s:s}", "user", id);
    hs_bus_call(r->srv->bus, CMD(USER_VIEW)->type, args, r->auth, &rep);
    json_decref(args);
    json_t *rec = rep.ok ? s_user_record(rep.result)
                         : json_pack("{s:O, s:O, s:O, s:O}", "id", json_object_get(user, "id"),
                                     "email", json_object_get(user, "email"), "org_id",
                                     json_object_get(org, "id"), "role_id", role_id);
    hs_reply_release(&rep);
    r->json = json_pack("{s:o, s:o, s:O, s:[]}", "User", rec, "Role", s_role_record(role),
                        "Organisation", org, "UserSetting");
    json_decref(role);
    json_decref(me);
}

/* --- organisations ------------------------------------------------------------------------------
 */

/* /organisations/index/scope:all (or /all): the scope, and the page. */
static json_t *s_orgs_query(hs_req *r)
{
    json_t *a = json_object();
    if (!strncmp(r->param, "scope:", 6))
        json_object_set_new(a, "scope", json_string(r->param + 6));
    else if (r->param[0])
        json_object_set_new(a, "scope", json_string(r->param));
    s_query_int(r, a, "limit");
    s_query_int(r, a, "page");
    return a;
}

static json_t *s_org_add_args(hs_req *r)
{
    return s_fields(r, "Organisation");
}

static json_t *s_org_edit_args(hs_req *r)
{
    json_t *a = s_fields(r, "Organisation");
    json_object_del(a, "id"); /* the route names the organisation */
    return a;
}

/* --- roles ---------------------------------------------------------------------------------- */

/* MISP's Role fields → role.add / role.edit arguments: permission 0..3 (or its name) as the
 * level, perm_<flag> true/false into perms / no_perms (no_perms on edit only). The four
 * level flags (perm_add, perm_modify, perm_modify_org, perm_publish) follow the level. */
static json_t *s_role_args(hs_req *r, bool edit)
{
    json_t *a = s_fields(r, "Role");
    json_t *perm = json_object_get(a, "permission");
    const char *ps = json_string_value(perm);
    long level = json_is_integer(perm)                          ? (long)json_integer_value(perm)
                 : ps && ps[0] >= '0' && ps[0] <= '3' && !ps[1] ? ps[0] - '0'
                                                                : -1;
    if (level >= 0 && level <= 3)
        json_object_set_new(a, "permission", json_string(ab_role_levels[level]));
    json_t *grant = json_array(), *take = json_array();
    for (int i = 0; ab_role_perms[i]; i++) {
        char key[64];
        snprintf(key, sizeof key, "perm_%s", ab_role_perms[i]);
        json_t *v = json_object_get(a, key);
        if (!v)
            continue;
        bool on = json_is_true(v) || (json_is_integer(v) && json_integer_value(v)) ||
                  (json_is_string(v) && !strcmp(json_string_value(v), "1"));
        json_array_append_new(on ? grant : take, json_string(ab_role_perms[i]));
        json_object_del(a, key);
    }
    static const char *const level_flags[] = {"perm_add", "perm_modify", "perm_modify_org",
                                              "perm_publish"};
    for (size_t i = 0; i < 4; i++)
        json_object_del(a, level_flags[i]);
    json_object_del(a, "id");
    if (json_array_size(grant) || !edit)
        json_object_set_new(a, "perms", grant);
    else
        json_decref(grant);
    if (edit && json_array_size(take))
        json_object_set_new(a, "no_perms", take);
    else
        json_decref(take);
    return a;
}

static json_t *s_role_add_args(hs_req *r)
{
    return s_role_args(r, false);
}

static json_t *s_role_edit_args(hs_req *r)
{
    return s_role_args(r, true);
}

/* --- settings, version, workers ----------------------------------------------------------------
 */

/* MISP's serverSettings: {finalSettings: [its records], problems}. */
static json_t *s_settings(json_t *res)
{
    json_t *list = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(res, "items"), i, it)
        json_array_append_new(list, s_setting_record(it));
    return json_pack("{s:o, s:O}", "finalSettings", list, "problems",
                     json_object_get(res, "problems"));
}

/* MISP refuses a cli_only setting with 405 and "This setting can only be edited via the
 * CLI."; the engine says so as forbidden on the field name (the shim's commands carry
 * via = "http"). */
static void s_setting_edit(hs_req *r)
{
    json_t *a = s_fields(r, "Server");
    json_object_set_new(a, "name", json_string(r->param));
    hs_reply rep;
    hs_bus_call(r->srv->bus, CMD(SETTING_SET)->type, a, r->auth, &rep);
    json_decref(a);
    if (rep.ok) {
        s_saved(r, "Field updated", NULL);
        json_object_set(r->json, "value", json_object_get(rep.result, "value"));
    } else if (!strcmp(rep.code, "forbidden") && !strcmp(rep.field, "name")) {
        hs_error(r, 405, rep.code, "This setting can only be edited via the CLI.", "%s",
                 rep.message);
        json_object_set_new(r->json, "field", json_string(rep.field));
    } else {
        hs_reply_error(r, &rep, true, "Server setting");
    }
    hs_reply_release(&rep);
}

/* MISP's getVersion: the engine's version, from whoami. */
static json_t *s_version(json_t *me)
{
    return json_pack("{s:O}", "version", json_object_get(json_object_get(me, "engine"), "version"));
}

/* MISP's getWorkers: per queue {ok, workers: [{pid, host, alive, ok, id, status}], jobCount}. */
static void s_workers(hs_req *r)
{
    json_t *stats = s_run(r, CMD(QUEUE_STATS), NULL, "Worker");
    json_t *list = stats ? s_run(r, CMD(WORKER_LIST), NULL, "Worker") : NULL;
    if (!list) {
        json_decref(stats);
        return;
    }
    json_t *out = json_object();
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(stats, "items"), i, q)
    {
        const char *name = json_string_value(json_object_get(q, "queue"));
        json_int_t waiting = json_integer_value(json_object_get(q, "queued")) +
                             json_integer_value(json_object_get(q, "retrying"));
        json_t *workers = json_array();
        bool any = false;
        size_t k;
        json_t *w;
        json_array_foreach(json_object_get(list, "items"), k, w)
        {
            if (!name || strcmp(name, json_string_value(json_object_get(w, "queue")) ?: ""))
                continue;
            bool alive = json_is_true(json_object_get(w, "alive"));
            any = any || alive;
            json_array_append_new(workers, json_pack("{s:O, s:O, s:b, s:b, s:O, s:O}", "pid",
                                                     json_object_get(w, "pid"), "host",
                                                     json_object_get(w, "host"), "alive", alive,
                                                     "ok", alive, "id", json_object_get(w, "id"),
                                                     "status", json_object_get(w, "status")));
        }
        json_object_set_new(out, name ? name : "?",
                            json_pack("{s:b, s:o, s:I}", "ok", any, "workers", workers, "jobCount",
                                      (json_int_t)waiting));
    }
    json_object_set_new(out, "proc_accessible", json_true());
    json_object_set_new(out, "controls", json_true());
    r->json = out;
    json_decref(stats);
    json_decref(list);
}

/* --- jobs, tasks, logs ------------------------------------------------------------------------ */

/* /jobs/index/QUEUE: the queue, the filters and the page. */
static json_t *s_jobs_query(hs_req *r)
{
    json_t *a = json_object();
    if (r->param[0])
        json_object_set_new(a, "queue", json_string(r->param));
    s_query_int(r, a, "limit");
    s_query_int(r, a, "page");
    s_query_int(r, a, "state");
    s_query_int(r, a, "type");
    return a;
}

/* MISP's getProgress answers the bare progress number. */
static json_t *s_progress(json_t *job)
{
    return json_incref(json_object_get(job, "progress"));
}

/* MISP's Task fields (timer, scheduled_time) → task.set (frequency, time). */
static json_t *s_task_args(hs_req *r)
{
    json_t *a = s_fields(r, "Task");
    s_rename(a, "timer", "frequency");
    s_rename(a, "scheduled_time", "time");
    json_object_del(a, "id"); /* the route names the task */
    return a;
}

/* POST /admin/logs/index: PyMISP's search_logs sends the filters bare; {"filters": {…},
 * "limit", "page"} is taken too. */
static json_t *s_log_args(hs_req *r)
{
    json_t *a = s_fields(r, "Log");
    json_t *filters = json_object_get(a, "filters");
    if (json_is_object(filters)) {
        json_object_update(a, filters);
        json_object_del(a, "filters");
    }
    s_query_int(r, a, "limit");
    s_query_int(r, a, "page");
    return a;
}

/* --- the route table ---------------------------------------------------------------------------
 */

/* The methods each route takes, as MISP's controllers do (add: POST; edit: POST or PUT;
 * delete: POST or DELETE); HEAD wherever GET is (MISP answers HEAD on views: PyMISP checks
 * that an organisation exists that way). Any other method on a known route is 405 with an
 * Allow header naming these. */
enum { GET = 1, HEAD = 2, POST = 4, PUT = 8, DEL = 16 };
#define READ (GET | HEAD)

/* What a route answers with its command's result. */
typedef struct {
    json_t *(*one)(json_t *result);  /* the result as MISP's body */
    json_t *(*each)(json_t *record); /* each of result.items, as a list */
    const char *saved;               /* MISP's "saved" body with this message and the id */
} s_answer;
/* One line each (clang-format would spread their braces over four). */
/* clang-format off */
#define ONE(make)      {make, NULL, NULL}
#define EACH(make)     {NULL, make, NULL}
#define SAVED(message) {NULL, NULL, message}
/* clang-format on */

typedef struct {
    int methods;
    const char *pattern;        /* "{}" matches one segment: the param */
    const ab_command *cmd;      /* the command it runs */
    const char *param;          /* the argument that is the param; NULL: none (or args says) */
    json_t *(*args)(hs_req *r); /* the other arguments, from the request; NULL: none */
    s_answer answer;            /* what MISP answers with the result */
    const char *model;          /* MISP's model, for refusals ("Invalid User") */
    void (*run)(hs_req *r);     /* instead of all the above: several commands, or own refusals */
} s_route;

/* A route that runs one command; one with a function of its own. */
/* clang-format off */
#define ROUTE(methods, pattern, id, param, args, answer, model) \
    {methods, pattern, CMD(id), param, args, answer, model, NULL}
#define OWN(methods, pattern, fn) {methods, pattern, .run = fn}
/* clang-format on */

static const s_route s_routes[] = {
    /* methods, path, command, the {} argument, the other arguments, the answer, the model */
    ROUTE(READ, "/servers/getVersion", AUTH_WHOAMI, NULL, NULL, ONE(s_version), "Server"),
    OWN(READ, "/users/view/me", s_users_me),
    ROUTE(READ, "/admin/users/index", USER_LIST, NULL, s_users_query, EACH(s_user_view), "User"),
    ROUTE(READ, "/admin/users/view/{}", USER_VIEW, "user", NULL, ONE(s_user_view), "User"),
    ROUTE(READ, "/users/view/{}", USER_VIEW, "user", NULL, ONE(s_user_view), "User"),
    ROUTE(POST, "/admin/users/add", USER_ADD, NULL, s_user_add_args, ONE(s_user_view), "User"),
    ROUTE(POST | PUT, "/admin/users/edit/{}", USER_EDIT, "user", s_user_edit_args, ONE(s_user_view),
          "User"),
    ROUTE(POST | DEL, "/admin/users/delete/{}", USER_DELETE, "user", NULL, SAVED("User deleted."),
          "User"),
    ROUTE(READ, "/organisations/index", ORG_LIST, NULL, s_orgs_query, EACH(s_org_view),
          "Organisation"),
    ROUTE(READ, "/organisations/index/{}", ORG_LIST, NULL, s_orgs_query, EACH(s_org_view),
          "Organisation"),
    ROUTE(READ, "/organisations/view/{}", ORG_VIEW, "org", NULL, ONE(s_org_view), "Organisation"),
    ROUTE(READ, "/admin/organisations/view/{}", ORG_VIEW, "org", NULL, ONE(s_org_view),
          "Organisation"),
    ROUTE(POST, "/admin/organisations/add", ORG_ADD, NULL, s_org_add_args, ONE(s_org_view),
          "Organisation"),
    ROUTE(POST | PUT, "/admin/organisations/edit/{}", ORG_EDIT, "org", s_org_edit_args,
          ONE(s_org_view), "Organisation"),
    ROUTE(POST | DEL, "/admin/organisations/delete/{}", ORG_DELETE, "org", NULL,
          SAVED("Organisation deleted"), "Organisation"),
    ROUTE(READ, "/roles/index", ROLE_LIST, NULL, NULL, EACH(s_role_view), "Role"),
    ROUTE(READ, "/roles/view/{}", ROLE_VIEW, "role", NULL, ONE(s_role_view), "Role"),
    ROUTE(POST, "/admin/roles/add", ROLE_ADD, NULL, s_role_add_args, ONE(s_role_view), "Role"),
    ROUTE(POST | PUT, "/admin/roles/edit/{}", ROLE_EDIT, "role", s_role_edit_args, ONE(s_role_view),
          "Role"),
    ROUTE(POST | DEL, "/admin/roles/delete/{}", ROLE_DELETE, "role", NULL, SAVED("Role deleted"),
          "Role"),
    ROUTE(POST, "/admin/roles/set_default/{}", ROLE_SET_DEFAULT, "role", NULL,
          SAVED("Default role set."), "Role"),
    ROUTE(READ, "/servers/serverSettings", SETTING_LIST, NULL, NULL, ONE(s_settings), "Server"),
    ROUTE(READ, "/servers/getSetting/{}", SETTING_GET, "name", NULL, ONE(s_setting_record),
          "Server"),
    OWN(POST, "/servers/serverSettingsEdit/{}", s_setting_edit),
    OWN(READ, "/servers/getWorkers", s_workers),
    ROUTE(READ, "/jobs/index", JOB_LIST, NULL, s_jobs_query, EACH(s_job_view), "Job"),
    ROUTE(READ, "/jobs/index/{}", JOB_LIST, NULL, s_jobs_query, EACH(s_job_view), "Job"),
    ROUTE(READ, "/jobs/view/{}", JOB_VIEW, "job", NULL, ONE(s_job_view), "Job"),
    ROUTE(READ, "/jobs/getProgress/{}", JOB_VIEW, "job", NULL, ONE(s_progress), "Job"),
    ROUTE(READ, "/tasks/index", TASK_LIST, NULL, NULL, EACH(s_task_view), "Task"),
    ROUTE(POST | PUT, "/tasks/edit/{}", TASK_SET, "task", s_task_args, ONE(s_task_view), "Task"),
    ROUTE(POST, "/tasks/run/{}", TASK_RUN, "task", NULL, ONE(s_job_view), "Task"),
    ROUTE(READ | POST, "/admin/logs/index", LOG_SEARCH, NULL, s_log_args, EACH(s_log_view), "Log"),
    OWN(READ, "/events", hs_events),
    OWN(READ, "/metrics", hs_metrics),
    OWN(READ, "/health", hs_health),
};

/* Serve r by route: its command with the arguments the request gives, answered as MISP does;
 * or the route's own function. */
static void s_serve(hs_req *r, const s_route *route)
{
    if (route->run) {
        route->run(r);
        return;
    }
    json_t *args = route->args ? route->args(r) : json_object();
    if (route->param)
        json_object_set_new(args, route->param, json_string(r->param));
    json_t *res = s_run(r, route->cmd, args, route->model);
    if (!res)
        return;
    if (route->answer.saved)
        s_saved(r, route->answer.saved, json_object_get(res, "id"));
    else if (route->answer.each)
        r->json = s_items(res, route->answer.each);
    else
        r->json = route->answer.one(res);
    json_decref(res);
}

static const char *const s_method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};
#define S_METHODS (sizeof s_method_names / sizeof s_method_names[0])

/* Does path match pattern? The "{}" segment's text goes to param, which has room for the
 * whole path. */
static bool s_match(const char *pattern, const char *path, char *param)
{
    param[0] = '\0';
    while (*pattern && *path) {
        if (!strncmp(pattern, "{}", 2)) {
            size_t n = strcspn(path, "/");
            if (n == 0)
                return false;
            memcpy(param, path, n);
            param[n] = '\0';
            path += n;
            pattern += 2;
            continue;
        }
        if (*pattern++ != *path++)
            return false;
    }
    return !*pattern && !*path;
}

/* The method's bit; 0 for one no route takes (methods are case-sensitive, RFC 9110). */
static int s_method_bit(const char *m)
{
    for (size_t i = 0; i < S_METHODS; i++)
        if (!strcmp(m, s_method_names[i]))
            return 1 << i;
    return 0;
}

/* Is m an HTTP token (RFC 9110), fit to be quoted in a message? */
static bool s_token(const char *m)
{
    for (const char *p = m; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
            return false;
    return *m != '\0';
}

/* "GET, HEAD, POST" for the methods in bits, into out. */
static void s_allow(int bits, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < S_METHODS; i++)
        if (bits & (1 << i)) {
            int k = snprintf(out + n, len - n, "%s%s", n ? ", " : "", s_method_names[i]);
            if (k < 0 || (size_t)k >= len - n)
                break;
            n += (size_t)k;
        }
}

bool hs_route(hs_req *r)
{
    char *param = malloc(strlen(r->path) + 1);
    if (!param) {
        hs_error(r, 500, "internal", "Internal Error", "out of memory");
        return true;
    }
    int allowed = 0, bit = s_method_bit(r->method);
    for (size_t i = 0; i < sizeof s_routes / sizeof s_routes[0]; i++) {
        if (!s_match(s_routes[i].pattern, r->path, param))
            continue;
        allowed |= s_routes[i].methods;
        if (!(s_routes[i].methods & bit))
            continue;
        r->param = param;
        s_serve(r, &s_routes[i]);
        r->param = "";
        free(param);
        return true;
    }
    free(param);
    if (!allowed)
        return false;
    s_allow(allowed, r->allow, sizeof r->allow);
    hs_error(r, 405, "invalid", "Method Not Allowed", "%.32s is not allowed on %s; it takes %s",
             s_token(r->method) ? r->method : "this method", r->path, r->allow);
    return true;
}
