/* misp.c — MISP's admin REST routes on top of adminbus commands.
 *
 * Each route names one command (two for the composite views), maps MISP's field names to
 * the command's arguments and the result back to MISP's record, wrapped by model name
 * ({"User": {…}}). Which fields exist, who may do what and what is valid is the engine's
 * business: unknown fields go through as sent and come back as the engine's precise
 * `invalid` (field = the name). The route table is at the end; docs/architecture.md
 * ("HTTP shim (issue 7)") shows it. */
#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "http/http.h"

/* --- helpers ---------------------------------------------------------------------------------- */

/* Run type with args (stolen) as the caller; the result (a new reference), or NULL with the
 * error response set on r. */
static json_t *s_run(hs_req *r, const char *type, json_t *args, bool write, const char *what)
{
    hs_reply rep;
    hs_bus_call(r->srv->bus, type, args, r->auth, &rep);
    json_decref(args);
    if (rep.ok) {
        json_t *res = rep.result;
        rep.result = NULL;
        return res;
    }
    hs_reply_error(r, &rep, write, what);
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

/* MISP's User fields → user.add / user.edit arguments. */
static json_t *s_user_args(hs_req *r)
{
    json_t *a = s_fields(r, "User");
    json_object_del(a, "id"); /* the route names the user */
    s_rename(a, "org_id", "org");
    s_rename(a, "role_id", "role");
    json_t *cpw = json_object_get(a, "change_pw");
    if (cpw && !strcmp(r->path, "/admin/users/add")) {
        bool change = json_is_true(cpw) || (json_is_integer(cpw) && json_integer_value(cpw)) ||
                      (json_is_string(cpw) && strcmp(json_string_value(cpw), "0") != 0);
        json_object_set_new(a, "no_password_change", json_boolean(!change));
        json_object_del(a, "change_pw");
    }
    return a;
}

static void s_users_add(hs_req *r)
{
    json_t *u = s_run(r, "user.add", s_user_args(r), true, "User");
    if (u)
        r->json = s_user_view(u);
    json_decref(u);
}

static void s_users_edit(hs_req *r)
{
    json_t *a = s_user_args(r);
    json_object_set_new(a, "user", json_string(r->param));
    json_t *u = s_run(r, "user.edit", a, true, "User");
    if (u)
        r->json = s_user_view(u);
    json_decref(u);
}

static void s_users_delete(hs_req *r)
{
    json_t *u = s_run(r, "user.delete", json_pack("{s:s}", "user", r->param), true, "User");
    if (u)
        s_saved(r, "User deleted.", json_object_get(u, "id"));
    json_decref(u);
}

static void s_users_view(hs_req *r)
{
    json_t *u = s_run(r, "user.view", json_pack("{s:s}", "user", r->param), false, "User");
    if (u)
        r->json = s_user_view(u);
    json_decref(u);
}

static void s_users_index(hs_req *r)
{
    json_t *a = json_object();
    s_query_int(r, a, "limit");
    s_query_int(r, a, "page");
    s_query_int(r, a, "org");
    s_query_int(r, a, "role");
    json_t *res = s_run(r, "user.list", a, false, "User");
    if (res)
        r->json = s_items(res, s_user_view);
    json_decref(res);
}

/* GET /users/view/me: who the key belongs to, MISP's handshake. The role's flags come from
 * role.view (any user may read roles); the full user row from user.view when the caller
 * may read it (admins), else what whoami says. */
static void s_users_me(hs_req *r)
{
    json_t *me = s_run(r, "auth.whoami", NULL, false, "User");
    if (!me)
        return;
    json_t *user = json_object_get(me, "user"), *org = json_object_get(me, "org");
    json_t *role_id = json_object_get(json_object_get(me, "role"), "id");
    json_t *role = s_run(r, "role.view", json_pack("{s:O}", "role", role_id), false, "Role");
    if (!role) {
        json_decref(me);
        return;
    }
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(user, "id")));
    hs_reply rep;
    json_t *args = json_pack("{s:s}", "user", id);
    hs_bus_call(r->srv->bus, "user.view", args, r->auth, &rep);
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

static void s_orgs_index(hs_req *r)
{
    json_t *a = json_object();
    if (!strncmp(r->param, "scope:", 6))
        json_object_set_new(a, "scope", json_string(r->param + 6));
    else if (r->param[0])
        json_object_set_new(a, "scope", json_string(r->param));
    s_query_int(r, a, "limit");
    s_query_int(r, a, "page");
    json_t *res = s_run(r, "org.list", a, false, "Organisation");
    if (res)
        r->json = s_items(res, s_org_view);
    json_decref(res);
}

static void s_orgs_view(hs_req *r)
{
    json_t *g = s_run(r, "org.view", json_pack("{s:s}", "org", r->param), false, "Organisation");
    if (g)
        r->json = s_org_view(g);
    json_decref(g);
}

static void s_orgs_add(hs_req *r)
{
    json_t *g = s_run(r, "org.add", s_fields(r, "Organisation"), true, "Organisation");
    if (g)
        r->json = s_org_view(g);
    json_decref(g);
}

static void s_orgs_edit(hs_req *r)
{
    json_t *a = s_fields(r, "Organisation");
    json_object_del(a, "id");
    json_object_set_new(a, "org", json_string(r->param));
    json_t *g = s_run(r, "org.edit", a, true, "Organisation");
    if (g)
        r->json = s_org_view(g);
    json_decref(g);
}

static void s_orgs_delete(hs_req *r)
{
    json_t *g = s_run(r, "org.delete", json_pack("{s:s}", "org", r->param), true, "Organisation");
    if (g)
        s_saved(r, "Organisation deleted", json_object_get(g, "id"));
    json_decref(g);
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

static void s_roles_index(hs_req *r)
{
    json_t *res = s_run(r, "role.list", json_object(), false, "Role");
    if (res)
        r->json = s_items(res, s_role_view);
    json_decref(res);
}

static void s_roles_view(hs_req *r)
{
    json_t *g = s_run(r, "role.view", json_pack("{s:s}", "role", r->param), false, "Role");
    if (g)
        r->json = s_role_view(g);
    json_decref(g);
}

static void s_roles_add(hs_req *r)
{
    json_t *g = s_run(r, "role.add", s_role_args(r, false), true, "Role");
    if (g)
        r->json = s_role_view(g);
    json_decref(g);
}

static void s_roles_edit(hs_req *r)
{
    json_t *a = s_role_args(r, true);
    json_object_set_new(a, "role", json_string(r->param));
    json_t *g = s_run(r, "role.edit", a, true, "Role");
    if (g)
        r->json = s_role_view(g);
    json_decref(g);
}

static void s_roles_delete(hs_req *r)
{
    json_t *g = s_run(r, "role.delete", json_pack("{s:s}", "role", r->param), true, "Role");
    if (g)
        s_saved(r, "Role deleted", json_object_get(g, "id"));
    json_decref(g);
}

static void s_roles_default(hs_req *r)
{
    json_t *g = s_run(r, "role.set_default", json_pack("{s:s}", "role", r->param), true, "Role");
    if (g)
        s_saved(r, "Default role set.", json_object_get(g, "id"));
    json_decref(g);
}

/* --- settings, version, workers ----------------------------------------------------------------
 */

static void s_settings(hs_req *r)
{
    json_t *res = s_run(r, "setting.list", json_object(), false, "Server");
    if (!res)
        return;
    json_t *list = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(res, "items"), i, it)
        json_array_append_new(list, s_setting_record(it));
    r->json = json_pack("{s:o, s:O}", "finalSettings", list, "problems",
                        json_object_get(res, "problems"));
    json_decref(res);
}

static void s_setting_get(hs_req *r)
{
    json_t *s = s_run(r, "setting.get", json_pack("{s:s}", "name", r->param), false, "Server");
    if (s)
        r->json = s_setting_record(s);
    json_decref(s);
}

/* MISP refuses a cli_only setting with 405 and "This setting can only be edited via the
 * CLI."; the engine says so as forbidden on the field name (the shim's commands carry
 * via = "http"). */
static void s_setting_edit(hs_req *r)
{
    json_t *a = s_fields(r, "Server");
    json_object_set_new(a, "name", json_string(r->param));
    hs_reply rep;
    hs_bus_call(r->srv->bus, "setting.set", a, r->auth, &rep);
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

static void s_version(hs_req *r)
{
    json_t *me = s_run(r, "auth.whoami", NULL, false, "Server");
    if (me)
        r->json = json_pack("{s:O}", "version",
                            json_object_get(json_object_get(me, "engine"), "version"));
    json_decref(me);
}

/* MISP's getWorkers: per queue {ok, workers: [{pid, host, alive, ok, id, status}], jobCount}. */
static void s_workers(hs_req *r)
{
    json_t *stats = s_run(r, "queue.stats", NULL, false, "Worker");
    json_t *list = stats ? s_run(r, "worker.list", NULL, false, "Worker") : NULL;
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

static void s_jobs_index(hs_req *r)
{
    json_t *a = json_object();
    if (r->param[0])
        json_object_set_new(a, "queue", json_string(r->param));
    s_query_int(r, a, "limit");
    s_query_int(r, a, "page");
    s_query_int(r, a, "state");
    s_query_int(r, a, "type");
    json_t *res = s_run(r, "job.list", a, false, "Job");
    if (res)
        r->json = s_items(res, s_job_view);
    json_decref(res);
}

static void s_jobs_view(hs_req *r)
{
    json_t *j = s_run(r, "job.view", json_pack("{s:s}", "job", r->param), false, "Job");
    if (j)
        r->json = s_job_view(j);
    json_decref(j);
}

/* MISP's getProgress answers the bare progress number. */
static void s_jobs_progress(hs_req *r)
{
    json_t *j = s_run(r, "job.view", json_pack("{s:s}", "job", r->param), false, "Job");
    if (j)
        r->json = json_incref(json_object_get(j, "progress"));
    json_decref(j);
}

static void s_tasks_index(hs_req *r)
{
    json_t *res = s_run(r, "task.list", NULL, false, "Task");
    if (res)
        r->json = s_items(res, s_task_view);
    json_decref(res);
}

/* MISP's Task fields (timer, scheduled_time) → task.set (frequency, time). */
static void s_tasks_edit(hs_req *r)
{
    json_t *a = s_fields(r, "Task");
    s_rename(a, "timer", "frequency");
    s_rename(a, "scheduled_time", "time");
    json_object_del(a, "id");
    json_object_set_new(a, "task", json_string(r->param));
    json_t *t = s_run(r, "task.set", a, true, "Task");
    if (t)
        r->json = s_task_view(t);
    json_decref(t);
}

static void s_tasks_run(hs_req *r)
{
    json_t *j = s_run(r, "task.run", json_pack("{s:s}", "task", r->param), true, "Task");
    if (j)
        r->json = s_job_view(j);
    json_decref(j);
}

/* POST /admin/logs/index: PyMISP's search_logs sends the filters bare; {"filters": {…},
 * "limit", "page"} is taken too. */
static void s_logs_index(hs_req *r)
{
    json_t *a = s_fields(r, "Log");
    json_t *filters = json_object_get(a, "filters");
    if (json_is_object(filters)) {
        json_object_update(a, filters);
        json_object_del(a, "filters");
    }
    s_query_int(r, a, "limit");
    s_query_int(r, a, "page");
    json_t *res = s_run(r, "log.search", a, false, "Log");
    if (res)
        r->json = s_items(res, s_log_view);
    json_decref(res);
}

/* --- the route table ---------------------------------------------------------------------------
 */

/* The methods each route takes, as MISP's controllers do (add: POST; edit: POST or PUT;
 * delete: POST or DELETE); HEAD wherever GET is (MISP answers HEAD on views: PyMISP checks
 * that an organisation exists that way). Any other method on a known route is 405 with an
 * Allow header naming these. */
enum { GET = 1, HEAD = 2, POST = 4, PUT = 8, DEL = 16 };
#define READ (GET | HEAD)

typedef struct {
    int methods;
    const char *pattern; /* "{}" matches one segment: the param */
    void (*handler)(hs_req *);
} s_route;

static const s_route s_routes[] = {
    {READ, "/servers/getVersion", s_version},
    {READ, "/users/view/me", s_users_me},
    {READ, "/admin/users/index", s_users_index},
    {READ, "/admin/users/view/{}", s_users_view},
    {READ, "/users/view/{}", s_users_view},
    {POST, "/admin/users/add", s_users_add},
    {POST | PUT, "/admin/users/edit/{}", s_users_edit},
    {POST | DEL, "/admin/users/delete/{}", s_users_delete},
    {READ, "/organisations/index", s_orgs_index},
    {READ, "/organisations/index/{}", s_orgs_index},
    {READ, "/organisations/view/{}", s_orgs_view},
    {READ, "/admin/organisations/view/{}", s_orgs_view},
    {POST, "/admin/organisations/add", s_orgs_add},
    {POST | PUT, "/admin/organisations/edit/{}", s_orgs_edit},
    {POST | DEL, "/admin/organisations/delete/{}", s_orgs_delete},
    {READ, "/roles/index", s_roles_index},
    {READ, "/roles/view/{}", s_roles_view},
    {POST, "/admin/roles/add", s_roles_add},
    {POST | PUT, "/admin/roles/edit/{}", s_roles_edit},
    {POST | DEL, "/admin/roles/delete/{}", s_roles_delete},
    {POST, "/admin/roles/set_default/{}", s_roles_default},
    {READ, "/servers/serverSettings", s_settings},
    {READ, "/servers/getSetting/{}", s_setting_get},
    {POST, "/servers/serverSettingsEdit/{}", s_setting_edit},
    {READ, "/servers/getWorkers", s_workers},
    {READ, "/jobs/index", s_jobs_index},
    {READ, "/jobs/index/{}", s_jobs_index},
    {READ, "/jobs/view/{}", s_jobs_view},
    {READ, "/jobs/getProgress/{}", s_jobs_progress},
    {READ, "/tasks/index", s_tasks_index},
    {POST | PUT, "/tasks/edit/{}", s_tasks_edit},
    {POST, "/tasks/run/{}", s_tasks_run},
    {READ | POST, "/admin/logs/index", s_logs_index},
    {READ, "/events", hs_events},
    {READ, "/metrics", hs_metrics},
    {READ, "/health", hs_health},
};

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
        s_routes[i].handler(r);
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
