"""The engines' command counters (issue 7): each engine publishes engine.<name>.stats
(totals per command type and outcome, an apply-latency histogram) every stats_every_s and
when it stops cleanly; the HTTP shim keeps the latest per engine and /metrics renders them
in the Prometheus text format, checked here by a strict parser.

No sleeping for a period: the tests wait for the stats event that follows their commands
(its ts is later than their last reply) and for /metrics to show that very event."""

import math
import re
import socket
import time
import uuid

import msgpack
import pytest
import zmq

from conftest import BIN, Daemon
from helpers import assert_error
from test_authkey import add_key, add_user
from test_http import curl
from test_whoami import project_version

# --- a strict parser of the Prometheus text format 0.0.4 --------------------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def parse_value(text):
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    assert re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text), f"bad value {text!r}"
    return float(text)


def parse_labels(text, line):
    """'a="x",b="y\\"z"' -> {"a": "x", "b": 'y"z'}; only \\\\, \\" and \\n escapes."""
    labels, i = {}, 0
    while i < len(text):
        m = LABEL_NAME.match(text, i)
        assert m and text[m.end():m.end() + 2] == '="', f"bad label in {line!r}"
        name, i, value = m.group(), m.end() + 2, []
        while text[i] != '"':
            if text[i] == "\\":
                esc = text[i + 1]
                assert esc in '\\"n', f"bad escape \\{esc} in {line!r}"
                value.append("\n" if esc == "n" else esc)
                i += 2
            else:
                assert text[i] != "\n"
                value.append(text[i])
                i += 1
        assert name not in labels, f"label {name} twice in {line!r}"
        labels[name] = "".join(value)
        i += 1
        if i < len(text):
            assert text[i] == ",", f"expected ',' at {i} in {line!r}"
            i += 1
    return labels


def family_of(name, types):
    if name in types:
        return name
    for fam, kind in types.items():
        if any(name == fam + s for s in SUFFIXES.get(kind, ())):
            return fam
    raise AssertionError(f"sample {name} has no # TYPE line before it")


def parse_exposition(text):
    """Parse and check the whole text; returns {(name, frozenset(labels)): value}."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, helps, samples, done, current = {}, set(), {}, set(), None
    for line in text[:-1].split("\n"):
        assert line, "empty line"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert METRIC_NAME.fullmatch(name), line
                assert name not in done, f"{name}: its lines are not together"
                if parts[1] == "TYPE":
                    assert len(parts) == 4 and parts[3] in TYPES, line
                    assert name not in types, f"second TYPE for {name}"
                    assert not any(family_of(n, {name: parts[3]}) == name for n, _ in samples
                                   if n.startswith(name)), f"TYPE of {name} after samples"
                    types[name] = parts[3]
                else:
                    assert name not in helps, f"second HELP for {name}"
                    helps.add(name)
                if current != name and current is not None:
                    done.add(current)
                current = name
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?", line)
        assert m, f"bad sample line {line!r}"
        name, labels = m.group(1), parse_labels(m.group(2) or "", line)
        fam = family_of(name, types)
        assert fam not in done, f"{fam}: its samples are not together"
        if current != fam and current is not None:
            done.add(current)
        current = fam
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"duplicate series {line!r}"
        samples[key] = parse_value(m.group(3))
        if types[fam] == "counter":
            assert samples[key] >= 0, line
        if name.endswith("_bucket") and types[fam] == "histogram":
            assert "le" in labels, line
    check_histograms(types, samples)
    return samples


def check_histograms(types, samples):
    """Buckets cumulative, ending in +Inf, which equals _count; _sum present."""
    for fam, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name == fam + "_bucket":
                rest = frozenset((k, x) for k, x in labels if k != "le")
                series.setdefault(rest, []).append((parse_value(dict(labels)["le"]), v))
        for rest, buckets in series.items():
            buckets.sort()
            assert buckets[-1][0] == math.inf, f"{fam}{dict(rest)}: no +Inf bucket"
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{fam}{dict(rest)}: buckets not cumulative"
            assert samples[(fam + "_count", rest)] == counts[-1], f"{fam}: _count != +Inf"
            assert (fam + "_sum", rest) in samples, f"{fam}: no _sum"


def test_the_parser_can_fail():
    """The parser refuses what Prometheus refuses (else the checks below prove nothing)."""
    good = ("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\n"
            "h_count 2\n")
    assert parse_exposition(good)[("a_total", frozenset({("x", "1")}))] == 2
    bad = [good.replace('x="1"', 'x="a\\q"'),            # unknown escape
           good.replace('a_total{x="1"} 2', 'a_total{x="1"} 2\na_total{x="1"} 3'),  # dup
           good.replace("h_count 2", "h_count 3"),          # _count != +Inf
           good.replace('h_bucket{le="+Inf"} 2', 'h_bucket{le="+Inf"} 0'),  # not cumulative
           good.replace("# TYPE a_total counter\n", ""),    # no TYPE
           good + "a_total{x=\"2\"} 1\n",                   # family split
           good.replace(" 2\n", " two\n", 1),               # bad value
           good[:-1]]                                       # no final newline
    for text in bad:
        with pytest.raises(AssertionError):
            parse_exposition(text)


# --- helpers -------------------------------------------------------------------------------

def subscribe(stack):
    s = stack.ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"engine.")
    s.connect(stack.events)
    return s


def next_stats(sub, after_ms, engine=None, timeout=30):
    """The first engine.*.stats event packed at or after after_ms (unix ms): its body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sub.poll(200):
            continue
        topic, body = sub.recv_multipart()
        ev = msgpack.unpackb(body, raw=False)
        assert topic.decode() == ev["topic"] and re.fullmatch(r"engine\..+\.stats", ev["topic"])
        if ev["ts"] >= after_ms and (engine is None or ev["data"]["engine"] == engine):
            return ev
    raise AssertionError(f"no stats event within {timeout}s")


def now_ms():
    return int(time.time() * 1000)


def metrics_showing(stack, http, ev, timeout=30):
    """/metrics, parsed, once it shows the stats event ev (or a later one) of its engine."""
    want = ev["ts"] / 1000.0
    key = ("adminbus_engine_stats_time_seconds", frozenset({("engine", ev["data"]["engine"])}))
    deadline = time.monotonic() + timeout
    while True:
        st, text = curl(http.base, "GET", "/metrics", stack.key)
        assert st == 200, text
        samples = parse_exposition(text)
        if samples.get(key, 0) >= want - 0.0005:
            return samples
        assert time.monotonic() < deadline, f"/metrics did not show {ev!r}:\n{text}"
        time.sleep(0.1)


def commands_of(samples, engine, types):
    """{(type, outcome): n} of the engine's adminbus_commands_total for those types."""
    out = {}
    for (name, labels), v in samples.items():
        lab = dict(labels)
        if name == "adminbus_commands_total" and lab["engine"] == engine and \
                lab["type"] in types:
            out[(lab["type"], lab["outcome"])] = v
    return out


def start_named_engine(stack, name, every_s):
    """Start the engine as --name NAME with stats every every_s seconds (stack.engine)."""
    env = dict(stack.env, ADMINBUS_STATS_EVERY_S=str(every_s))
    log = stack.home / f"engine-{name}-{uuid.uuid4().hex[:6]}.log"
    stack.engine = Daemon("engine", [str(BIN / "adminbus-engine"), "--name", name], env, log)
    stack.wait_ready()
    return stack.engine


def stop_engine(stack):
    rc = stack.engine.stop()
    assert rc == 0, f"engine exited with {rc}:\n{stack.tail(stack.engine.log)}"
    stack.engine.expected_dead = True  # (teardown: stopped here, on purpose)
    stack.check_log_file(stack.engine.log)


# --- the tests -------------------------------------------------------------------------------

def test_metrics_count_each_type_and_outcome(stack):
    http = stack.start_http()
    sub = subscribe(stack)
    user = add_user(stack, "plain@metrics.test")
    _, plain_key = add_key(stack, user["email"])

    stack.ok("org.add", {"name": "Metrics One"})
    same = str(uuid.uuid4())
    first = stack.ok("org.add", {"name": "Metrics Two"}, id=same)
    again = stack.cmd("org.add", {"name": "Metrics Two"}, id=same)  # replayed
    assert again["ok"] is True and again["result"] == first
    assert_error(stack.cmd("org.add", {}), "invalid", "name")
    assert_error(stack.cmd("org.add", {"name": "Metrics Three", "nope": 1}), "invalid")
    assert_error(stack.cmd("org.add", {"name": "Metrics Four"}, auth=plain_key), "forbidden")
    assert_error(stack.cmd("org.view", {"org": "No Such Org"}), "not_found")
    st, _ = curl(http.base, "GET", "/organisations/index", stack.key)  # org.list via HTTP
    assert st == 200
    assert_error(stack.cmd("no.such.command"), "invalid", "type")
    after = now_ms()

    ev = next_stats(sub, after)
    data = ev["data"]
    engine = data["engine"]
    assert ev["topic"] == f"engine.{engine}.stats"
    assert data["seq"] >= 1 and data["period_ms"] == 5000 and data["started"] <= after
    assert data["commands"]["org.add"] == {"ok": 2, "replayed": 1, "invalid": 2, "forbidden": 1}
    samples = metrics_showing(stack, http, ev)
    assert commands_of(samples, engine, {"org.add", "org.view", "org.list", "unknown"}) == {
        ("org.add", "ok"): 2, ("org.add", "replayed"): 1, ("org.add", "invalid"): 2,
        ("org.add", "forbidden"): 1, ("org.view", "not_found"): 1, ("org.list", "ok"): 1,
        ("unknown", "invalid"): 1}
    # the histogram: every command answered (the setup's too) is in it
    every = sum(v for (n, lab), v in samples.items()
                if n == "adminbus_commands_total" and dict(lab)["engine"] == engine)
    count = samples[("adminbus_command_duration_seconds_count", frozenset({("engine", engine)}))]
    assert count >= 9 and every >= 9
    bounds = {dict(lab)["le"] for (n, lab), _ in samples.items()
              if n == "adminbus_command_duration_seconds_bucket"}
    assert bounds == {"0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"}
    assert samples[("adminbus_engines", frozenset())] == 1
    start = samples[("adminbus_engine_start_time_seconds", frozenset({("engine", engine)}))]
    assert start == data["started"] / 1000.0
    # the shim's own counters are still there, beside the engine's
    assert samples[("adminbus_http_commands_total",
                    frozenset({("type", "org.list"), ("outcome", "ok")}))] == 1
    sub.close()


def engines_in(samples):
    return {dict(lab)["engine"] for (n, lab), _ in samples.items()
            if n == "adminbus_engine_start_time_seconds"}


def test_clean_exit_publishes_and_a_restart_resets_the_series(stack):
    """A clean stop publishes the final totals at once (the period here is long); a new run
    under the same name replaces the series (a counter reset, with a later start time); an
    engine not heard from for three periods leaves /metrics. (/metrics runs commands of its
    own: an engine named "metrics-helper" answers them while the one under test is down.)"""
    http = stack.start_http()
    sub = subscribe(stack)
    stop_engine(stack)
    start_named_engine(stack, "metrics-engine", every_s=600)
    stack.ok("org.add", {"name": "Before Stop"})
    assert_error(stack.cmd("org.view", {"org": "No Such Org"}), "not_found")
    stopped_at = now_ms()
    stop_engine(stack)
    final = next_stats(sub, stopped_at, engine="metrics-engine", timeout=10)
    assert final["data"]["commands"]["org.add"] == {"ok": 1}
    assert final["data"]["commands"]["org.view"] == {"not_found": 1}
    start_named_engine(stack, "metrics-helper", every_s=600)
    samples = metrics_showing(stack, http, final)
    assert commands_of(samples, "metrics-engine", {"org.add", "org.view"}) == {
        ("org.add", "ok"): 1, ("org.view", "not_found"): 1}
    old_start = final["data"]["started"]
    stop_engine(stack)

    # the same name again: its counters start from zero, its start time moves on
    start_named_engine(stack, "metrics-engine", every_s=1)
    stack.ok("org.add", {"name": "After Restart"})
    ev = next_stats(sub, now_ms(), engine="metrics-engine")
    assert ev["data"]["instance"] != final["data"]["instance"]
    samples = metrics_showing(stack, http, ev)
    assert commands_of(samples, "metrics-engine", {"org.add", "org.view"}) == {
        ("org.add", "ok"): 1}
    start = samples[("adminbus_engine_start_time_seconds",
                     frozenset({("engine", "metrics-engine")}))]
    assert start * 1000 > old_start

    # stopped for good: gone from /metrics after three of its (1 s) periods, while another
    # engine serves /metrics' own commands
    stop_engine(stack)
    start_named_engine(stack, "metrics-engine-2", every_s=1)
    ev = next_stats(sub, now_ms(), engine="metrics-engine-2")
    deadline = time.monotonic() + 30
    while "metrics-engine" in engines_in(samples := metrics_showing(stack, http, ev)):
        assert time.monotonic() < deadline, "the stopped engine stays in /metrics"
        time.sleep(0.2)
    # (the fixture's first engine, 5 s periods, may still be within its 15 s)
    assert {"metrics-helper", "metrics-engine-2"} <= engines_in(samples)
    assert samples[("adminbus_engines", frozenset())] == len(engines_in(samples))
    assert commands_of(samples, "metrics-engine", {"org.add"}) == {}
    sub.close()


# --- jobs: counters that only grow, a run-time histogram, queue latency, build -----------

def scrape(stack, http):
    st, text = curl(http.base, "GET", "/metrics", stack.key)
    assert st == 200, text
    return parse_exposition(text)


def series(samples, name, **labels):
    """{frozenset(labels): value} of name's samples whose labels include labels."""
    want = set(labels.items())
    return {lab: v for (n, lab), v in samples.items() if n == name and want <= set(lab)}


def one(samples, name, **labels):
    got = series(samples, name, **labels)
    assert len(got) == 1, f"{name}{labels}: {got}"
    return next(iter(got.values()))


def wait_ended(stack, n, timeout=60):
    deadline = time.monotonic() + timeout
    while stack.count("jobs", "state IN ('done', 'failed', 'cancelled')") < n:
        assert time.monotonic() < deadline, stack.rows(
            "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        time.sleep(0.1)


def test_job_counters_count_every_ended_job_and_only_grow(stack):
    """301 no-op jobs done, two that fail, one cancelled while it waits: the counter and the
    histogram's _count say exactly that (not the last 100 rows), the run times land in the
    buckets, and neither purging the jobs nor restarting the shim or the worker changes a
    count."""
    http = stack.start_http()
    worker = stack.start_worker()
    ids = stack.ok("job.enqueue_many", {"jobs": [{"type": "noop"}] * 301})["ids"]
    fail = [stack.ok("job.enqueue", {"type": "sleep", "args": {"ms": 30, "fatal": True}})["id"]
            for _ in range(2)]
    later = stack.ok("job.enqueue", {"type": "noop", "run_at": now_ms() + 3_600_000})["id"]
    stack.ok("job.cancel", {"job": later})
    wait_ended(stack, len(ids) + 3)

    samples = scrape(stack, http)
    # (a summary over the latest 100 finished rows said 100 here)
    assert one(samples, "adminbus_job_duration_seconds_count", type="noop", state="done") == 301
    noop = {"queue": "default", "type": "noop", "state": "done"}
    assert one(samples, "adminbus_jobs_finished_total", **noop) == 301
    assert one(samples, "adminbus_job_duration_seconds_count", **noop) == 301
    assert one(samples, "adminbus_job_duration_seconds_bucket", le="+Inf", **noop) == 301
    assert 0 < one(samples, "adminbus_job_duration_seconds_sum", **noop) < 301 * 0.05
    bounds = {dict(lab)["le"] for lab in series(samples, "adminbus_job_duration_seconds_bucket",
                                                  **noop)}
    assert bounds == {"0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "10", "60",
                      "600", "3600", "+Inf"}
    failed = {"queue": "default", "type": "sleep", "state": "failed"}
    assert one(samples, "adminbus_jobs_finished_total", **failed) == 2
    assert one(samples, "adminbus_job_duration_seconds_count", **failed) == 2
    # a fatal sleep fails before it sleeps: within 10 ms
    assert one(samples, "adminbus_job_duration_seconds_bucket", le="0.01", **failed) == 2
    cancelled = {"queue": "default", "type": "noop", "state": "cancelled"}
    assert one(samples, "adminbus_jobs_finished_total", **cancelled) == 1
    assert series(samples, "adminbus_job_duration_seconds_count", **cancelled) == {}  # never ran
    assert one(samples, "adminbus_build_info", version=project_version()) == 1
    assert all(re.fullmatch(r"[^:]+:\d+", dict(lab)["engine"])
               for lab in series(samples, "adminbus_engine_start_time_seconds"))

    # not derived from the rows that are kept: purge every finished job, restart the shim and
    # the worker; the counts stay, and the next jobs add to them
    assert stack.ok("job.purge", {"all": True})["deleted"] == len(ids) + 3
    assert worker.stop() == 0
    http.stop()
    http = stack.start_http()
    stack.start_worker()
    more = stack.ok("job.enqueue_many", {"jobs": [{"type": "noop"}] * 9})["ids"]
    deadline = time.monotonic() + 60
    while stack.count("jobs", "state = 'done'") < len(more):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    samples = scrape(stack, http)
    assert one(samples, "adminbus_jobs_finished_total", **noop) == 310
    assert one(samples, "adminbus_job_duration_seconds_count", **noop) == 310
    assert one(samples, "adminbus_jobs_finished_total", **failed) == 2


def test_queue_clear_and_cleanup_count_what_they_end(stack):
    """Ends outside a worker's run count too: queue clear (per type), a job failed by the
    reaper after its worker died, both without a run time."""
    http = stack.start_http()
    for _ in range(3):
        stack.ok("job.enqueue", {"type": "noop", "run_at": now_ms() + 3_600_000})
    stack.ok("job.enqueue", {"type": "sleep", "args": {"ms": 10}, "run_at": now_ms() + 3_600_000})
    assert stack.ok("queue.clear", {"queue": "default"})["cleared"] == 4
    # a job whose worker is killed -9 on its last attempt: the reaper fails it
    w = stack.start_worker(job_lease_s=2)
    jid = stack.ok("job.enqueue", {"type": "sleep", "args": {"ms": 60000},
                                   "max_attempts": 1})["id"]
    deadline = time.monotonic() + 30
    while stack.rows("SELECT state FROM jobs WHERE id = %s", jid)[0]["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    w.kill9()
    stack.start_worker(job_lease_s=2)
    deadline = time.monotonic() + 30
    while stack.rows("SELECT state FROM jobs WHERE id = %s", jid)[0]["state"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    samples = scrape(stack, http)
    assert one(samples, "adminbus_jobs_finished_total", queue="default", type="noop",
               state="cancelled") == 3
    assert one(samples, "adminbus_jobs_finished_total", queue="default", type="sleep",
               state="cancelled") == 1
    assert one(samples, "adminbus_jobs_finished_total", queue="default", type="sleep",
               state="failed") == 1
    assert series(samples, "adminbus_job_duration_seconds_count", type="sleep") == {}


def test_queue_latency_is_the_age_of_the_oldest_due_job(stack):
    """adminbus_queue_oldest_ready_age_seconds: how long the oldest job that may run now has
    waited, per queue; 0 for a queue whose jobs are all due later."""
    from test_worker import sql_enqueue
    http = stack.start_http()
    sql_enqueue(stack, "noop", queue="prio", run_at_ms=now_ms() - 90_000, priority=5)
    sql_enqueue(stack, "noop", queue="prio", run_at_ms=now_ms() - 30_000)
    sql_enqueue(stack, "noop", queue="cache", run_at_ms=now_ms() + 600_000)
    samples = scrape(stack, http)
    prio = one(samples, "adminbus_queue_oldest_ready_age_seconds", queue="prio")
    assert 90 <= prio < 120, prio
    assert one(samples, "adminbus_queue_oldest_ready_age_seconds", queue="cache") == 0
    assert one(samples, "adminbus_queue_oldest_ready_age_seconds", queue="email") == 0


def test_the_engine_label_is_its_host_and_slot_not_its_pid(stack):
    """The default engine name is host:slot (the first free slot of its home): a restart
    keeps it, so /metrics carries one series on; a second engine beside it gets the next."""
    host = socket.gethostname()
    first = stack.ok("auth.whoami")["engine"]["name"]
    assert first == f"{host}:0", first
    http = stack.start_http()
    sub = subscribe(stack)
    stop_engine(stack)
    stack.start_engine()
    assert stack.ok("auth.whoami")["engine"]["name"] == first
    second = Daemon("engine 2", [str(BIN / "adminbus-engine")],
                    dict(stack.env, ADMINBUS_STATS_EVERY_S="1"), stack.home / "engine-2.log")
    try:
        ev = next_stats(sub, now_ms(), engine=f"{host}:1")
        samples = metrics_showing(stack, http, ev)
        assert {first, f"{host}:1"} <= engines_in(samples)
        assert not any(str(stack.engine.pid) in e or str(second.pid) in e
                       for e in engines_in(samples))
    finally:
        assert second.stop() == 0
        stack.check_log_file(second.log)
    sub.close()


def test_a_removed_workers_counts_stay_in_the_totals(stack):
    """A worker adds to counter rows of its own; when its registration is removed (worker
    cleanup) they move to the shared rows in that transaction: the totals do not change and
    the table keeps no rows of a worker that is gone."""
    http = stack.start_http()
    w = stack.start_worker()
    ids = stack.ok("job.enqueue_many", {"jobs": [{"type": "noop"}] * 20})["ids"]
    wait_ended(stack, len(ids))
    assert w.stop() == 0
    mine = stack.rows("SELECT SUM(finished) AS n FROM job_counts WHERE shard = %s", w.id)
    assert mine[0]["n"] == 20
    noop = {"queue": "default", "type": "noop", "state": "done"}
    before = scrape(stack, http)
    assert one(before, "adminbus_jobs_finished_total", **noop) == 20
    r = stack.ok("worker.cleanup", {"worker": w.id})
    assert r["removed"] is True, r
    assert stack.count("job_counts", "shard = %s", w.id) == 0
    assert stack.rows("SELECT SUM(finished) AS n FROM job_counts WHERE shard = ''")[0]["n"] == 20
    after = scrape(stack, http)
    for name in ("adminbus_jobs_finished_total", "adminbus_job_duration_seconds_count",
                 "adminbus_job_duration_seconds_sum"):
        assert one(after, name, **noop) == one(before, name, **noop), name
    assert series(after, "adminbus_job_duration_seconds_bucket", **noop) == \
        series(before, "adminbus_job_duration_seconds_bucket", **noop)
