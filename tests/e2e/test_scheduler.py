"""The scheduler (issue 3, acceptance 4) and the task commands: leader election, exactly-once
firing under three schedulers, downtime, frequency 0, disabled and unknown tasks,
task.set validation, task.run, and the retention jobs jobs.purge and commands.purge."""

import uuid
from datetime import datetime, timezone

from helpers import assert_error, audit_rows, ctl_json, wait_for

JOBS_PURGE, COMMANDS_PURGE, CACHE_EXPORTS, PUSH_ALL = 6, 7, 1, 3


def db_now(stack):
    return int(stack.rows("SELECT UNIX_TIMESTAMP() AS t")[0]["t"])


def minute_floor(epoch):
    """(epoch of the minute, --next text) for the minute that contains epoch."""
    m = epoch - epoch % 60
    return m, datetime.fromtimestamp(m, timezone.utc).strftime("%Y-%m-%dT%H:%M")


def iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def task(stack, tid):
    return stack.rows("SELECT * FROM tasks WHERE id = %s", tid)[0]


def wait_fired(stack, tid, timeout=30):
    return wait_for(f"task {tid} fired",
                    lambda: task(stack, tid)["last_job_id"] is not None, timeout)


def jobs_of(stack, job_type):
    return list(stack.rows("SELECT * FROM jobs WHERE job_type = %s ORDER BY id", job_type))


def wait_job_done(stack, job_id, timeout=30):
    def done():
        r = stack.rows("SELECT state, message, last_error FROM jobs WHERE id = %s", job_id)
        assert r and r[0]["state"] not in ("failed", "cancelled"), r
        return r and r[0]["state"] == "done" and r[0]
    return wait_for(f"job {job_id} done", done, timeout)


def one_leader(schedulers):
    return [s for s in schedulers if s.alive() and s.is_leader()]


TICK = ": tick: "  # the debug line a scheduler writes once each tick's work is done


def wait_ticks(schedulers, n=2):
    """Wait until each scheduler (run at log_level debug) has finished n ticks from now on.
    The last of two is a whole tick begun after this call: the leader has looked at the
    tasks again, the others have tried the lock again. Proves that a moment has passed in
    which a wrong firing would have happened, without sleeping for it."""
    marks = [(s, s.log_size()) for s in schedulers]
    for s, mark in marks:
        s.wait_log(TICK, since=mark, count=n)


# --- acceptance 4 ---------------------------------------------------------------------------


def test_three_schedulers_fire_each_due_run_exactly_once(stack):
    scheds = [stack.start_scheduler(log_level="debug") for _ in range(3)]
    leaders = wait_for("a leader", lambda: one_leader(scheds))
    wait_ticks(scheds)  # the others have tried (and failed) to take the lock since
    assert len(one_leader(scheds)) == 1, [s.log_text() for s in scheds]

    due, text = minute_floor(db_now(stack))
    r = stack.ok("task.set", {"task": JOBS_PURGE, "frequency": 1, "next": text})
    assert r["next_execution_time"] == due and r["timer"] == 1
    wait_fired(stack, JOBS_PURGE)
    wait_ticks(scheds)  # every scheduler has had a whole tick since, to fire it again

    key = f"task:{JOBS_PURGE}:{iso(due)}"
    jobs = jobs_of(stack, "jobs.purge")
    assert [j["unique_key"] for j in jobs] == [key]
    t = task(stack, JOBS_PURGE)
    assert t["next_execution_time"] == due + 3600 > db_now(stack)
    assert t["last_job_id"] == jobs[0]["id"] and t["process_id"] == str(jobs[0]["id"])
    fired = sum(s.log_text().count(f"task {JOBS_PURGE} (jobs.purge) due") for s in scheds)
    assert fired == 1

    stack.start_worker("default")
    wait_job_done(stack, jobs[0]["id"])

    # The leader dies: another takes over and fires the next due task.
    leader = leaders[0]
    leader.kill9()
    rest = [s for s in scheds if s is not leader]
    wait_for("a new leader", lambda: one_leader(rest), timeout=30)
    due2, text2 = minute_floor(db_now(stack))
    stack.ok("task.set", {"task": COMMANDS_PURGE, "frequency": 24, "next": text2})
    wait_fired(stack, COMMANDS_PURGE)
    wait_ticks(rest)
    assert [j["unique_key"] for j in jobs_of(stack, "commands.purge")] == \
        [f"task:{COMMANDS_PURGE}:{iso(due2)}"]
    assert len(jobs_of(stack, "jobs.purge")) == 1


def test_task_due_during_downtime_runs_once(stack):
    now = db_now(stack)
    missed = now - 5 * 3600 - 600  # five missed periods and some
    stack.rows("UPDATE tasks SET timer = 1, enabled = 1, next_execution_time = %s WHERE id = %s",
               missed, JOBS_PURGE)
    assert jobs_of(stack, "jobs.purge") == []  # no scheduler runs yet: nothing fired

    sched = stack.start_scheduler(log_level="debug")
    wait_fired(stack, JOBS_PURGE)
    wait_ticks([sched])
    jobs = jobs_of(stack, "jobs.purge")
    assert [j["unique_key"] for j in jobs] == [f"task:{JOBS_PURGE}:{iso(missed)}"]
    nxt = task(stack, JOBS_PURGE)["next_execution_time"]
    assert nxt == missed + 6 * 3600  # advanced by whole periods past now, MISP's way
    assert db_now(stack) < nxt <= db_now(stack) + 3600

    # A restart changes nothing: the run is not due again.
    sched.stop()
    again = stack.start_scheduler(log_level="debug").wait_log(": leader (")
    wait_ticks([again])
    assert len(jobs_of(stack, "jobs.purge")) == 1


def test_frequency_zero_runs_once(stack):
    sched = stack.start_scheduler(log_level="debug")
    due, text = minute_floor(db_now(stack))
    stack.ok("task.set", {"task": JOBS_PURGE, "frequency": 0, "next": text})
    wait_fired(stack, JOBS_PURGE)
    wait_ticks([sched])
    assert len(jobs_of(stack, "jobs.purge")) == 1
    t = stack.ok("task.list")["items"][JOBS_PURGE - 1]
    assert t["id"] == JOBS_PURGE and t["timer"] == 0
    assert t["next_execution_time"] == 0 and t["next_run"] is None
    assert "runs once" in t["message"]


def test_disabled_and_unknown_type_tasks_never_fire(stack):
    past = db_now(stack) - 120
    stack.ok("task.set", {"task": JOBS_PURGE, "enabled": False})
    stack.rows("UPDATE tasks SET next_execution_time = %s WHERE id IN (%s, %s)", past,
               JOBS_PURGE, CACHE_EXPORTS)
    # A task whose job type does not exist cannot be enabled by a command...
    assert_error(stack.cmd("task.set", {"task": CACHE_EXPORTS, "enabled": True}), "conflict",
                 "enabled")
    # ...and if it is enabled anyway (an older build, a hand edit), the scheduler disables it.
    stack.rows("UPDATE tasks SET enabled = 1 WHERE id = %s", CACHE_EXPORTS)
    sched = stack.start_scheduler(log_level="debug")
    wait_for("cache_exports disabled", lambda: task(stack, CACHE_EXPORTS)["enabled"] == 0)
    wait_ticks([sched])
    assert stack.count("jobs") == 0
    assert "no job type cache_exports" in task(stack, CACHE_EXPORTS)["message"]
    items = {t["id"]: t for t in stack.ok("task.list")["items"]}
    assert [items[i]["type"] for i in range(1, 8)] == [
        "cache_exports", "pull_all", "push_all", "cache_feeds", "fetch_feeds", "jobs.purge",
        "commands.purge"]
    assert all(not items[i]["runnable"] and not items[i]["enabled"] for i in range(1, 6))
    assert items[COMMANDS_PURGE]["runnable"] and items[COMMANDS_PURGE]["enabled"]
    assert items[COMMANDS_PURGE]["queue"] == "default"
    assert items[JOBS_PURGE]["enabled"] is False


# --- the commands -----------------------------------------------------------------------------


def test_task_set_validation(stack):
    for args, field in [
        ({"time": "25:00"}, "time"), ({"time": "12:60"}, "time"), ({"time": "1:000"}, "time"),
        ({"time": "1:00"}, "time"), ({"next": "2026-02-30"}, "next"),
        ({"next": "2026-13-01"}, "next"), ({"next": "2026-12-01T24:00"}, "next"),
        ({"next": "2026-12-01 01:00"}, "next"), ({"next": "01/12/2026"}, "next"),
        ({"next": "2025-02-29"}, "next"), ({"frequency": -1}, "frequency"),
    ]:
        assert_error(stack.cmd("task.set", {"task": PUSH_ALL, **args}), "invalid", field)
    assert_error(stack.cmd("task.set", {"task": 999, "frequency": 1}), "not_found", "task")
    assert task(stack, PUSH_ALL)["timer"] == 0  # nothing changed


def test_task_set_like_the_issue_says(stack):
    r = ctl_json(stack, "tasks", "set", PUSH_ALL, "--frequency", 24, "--time", "01:00",
                 "--next", "2026-12-01")
    expected = int(datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc).timestamp())
    assert r["timer"] == 24 and r["scheduled_time"] == "01:00"
    assert r["next_execution_time"] == expected and r["next_run"] == "2026-12-01T01:00:00Z"
    assert r["message"] == "Next run 2026-12-01T01:00:00Z."
    row = audit_rows(stack, model="Task", model_id=PUSH_ALL)[-1]
    assert row["action"] == "edit"
    assert "timer (0) => (24)" in row["change"]
    assert "scheduled_time (12:00) => (01:00)" in row["change"]
    assert f"next_execution_time (0) => ({expected})" in row["change"]
    # --next with its own time sets the task's time; --time alone keeps the day.
    r = stack.ok("task.set", {"task": PUSH_ALL, "next": "2027-01-02T05:30"})
    assert r["scheduled_time"] == "05:30" and r["next_run"] == "2027-01-02T05:30:00Z"
    r = stack.ok("task.set", {"task": PUSH_ALL, "time": "23:15", "description": "x"})
    assert r["next_run"] == "2027-01-02T23:15:00Z" and r["description"] == "x"
    listed = ctl_json(stack, "tasks", "list")["items"]
    # every task by id: the seeds of 0003 (1-7) and those later migrations add (0007's
    # logins.purge)
    assert [t["id"] for t in listed] == [r["id"] for r in stack.rows("SELECT id FROM tasks "
                                                                     "ORDER BY id")]
    assert [t["id"] for t in listed][:7] == list(range(1, 8))


def test_task_run_enqueues_now(stack):
    r = stack.ok("task.run", {"task": JOBS_PURGE})
    assert r["type"] == "jobs.purge" and r["queue"] == "default" and r["existed"] is False
    assert r["unique_key"].startswith(f"task:{JOBS_PURGE}:")
    job = stack.rows("SELECT * FROM jobs WHERE id = %s", r["id"])[0]
    assert job["state"] == "queued" and job["unique_key"] == r["unique_key"]
    t = task(stack, JOBS_PURGE)
    assert t["last_job_id"] == r["id"] and t["enabled"] == 1
    assert audit_rows(stack, model="Task", action="run", model_id=JOBS_PURGE)
    stack.start_worker("default")
    wait_job_done(stack, r["id"])
    assert_error(stack.cmd("task.run", {"task": CACHE_EXPORTS}), "conflict", "task")
    assert_error(stack.cmd("task.run", {"task": 999}), "not_found", "task")


# --- retention jobs ---------------------------------------------------------------------------


def insert_job(stack, state, finished_days_ago):
    fin = None if finished_days_ago is None else f"UTC_TIMESTAMP(3) - INTERVAL {finished_days_ago} DAY"
    with stack.db.cursor() as c:
        c.execute("INSERT INTO jobs (worker, job_type, state, status, run_at, date_created, "
                  "date_modified, date_finished) VALUES ('default', 'noop', %s, 4, "
                  "UTC_TIMESTAMP(3) - INTERVAL 50 DAY, UTC_TIMESTAMP(3) - INTERVAL 50 DAY, "
                  f"UTC_TIMESTAMP(3), {fin or 'NULL'})", (state,))
        return c.lastrowid


def enqueue(stack, job_type, **args):
    return stack.ok("job.enqueue", {"type": job_type, "args": args})["id"]


def test_jobs_purge_deletes_old_finished_jobs_only(stack):
    old = [insert_job(stack, s, 40) for s in ("done", "done", "failed", "cancelled")]
    recent = insert_job(stack, "done", 10)
    waiting = insert_job(stack, "queued", None)
    stack.start_worker("default")
    j = enqueue(stack, "jobs.purge")
    done = wait_job_done(stack, j)
    assert "Deleted 4 of 4" in done["message"]
    left = {r["id"] for r in stack.rows("SELECT id FROM jobs")}
    assert not left & set(old)
    assert {recent, waiting, j} <= left
    j2 = enqueue(stack, "jobs.purge", days=5)
    wait_job_done(stack, j2)
    left = {r["id"] for r in stack.rows("SELECT id FROM jobs")}
    assert recent not in left and {waiting, j2} <= left


def insert_command_id(stack, days_ago):
    cid = str(uuid.uuid4())
    with stack.db.cursor() as c:
        c.execute("INSERT INTO command_ids (user_id, cmd_id, digest, reply, created) VALUES "
                  "(1, %s, %s, 'x', UTC_TIMESTAMP(3) - INTERVAL %s DAY)",
                  (cid, b"\0" * 32, days_ago))
    return cid


def test_commands_purge_uses_the_retention_setting(stack):
    old = [insert_command_id(stack, 10), insert_command_id(stack, 8)]
    keep = [insert_command_id(stack, 3)]
    stack.start_worker("default")
    j = enqueue(stack, "commands.purge")  # default: command_retention_days (7)
    done = wait_job_done(stack, j)
    assert "Deleted 2 of 2" in done["message"]
    ids = {r["cmd_id"] for r in stack.rows("SELECT cmd_id FROM command_ids")}
    assert not ids & set(old) and set(keep) <= ids
    assert len(ids) >= 2  # the recent commands' own ids stay
    j2 = enqueue(stack, "commands.purge", days=2)
    wait_job_done(stack, j2)
    ids = {r["cmd_id"] for r in stack.rows("SELECT cmd_id FROM command_ids")}
    assert not ids & set(keep) and len(ids) >= 2
