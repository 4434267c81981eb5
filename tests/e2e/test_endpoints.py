"""Who can reach the bus's insides (docs/architecture.md, "Who can reach what").

The internal endpoints carry what no other user may see or write: engine_endpoint the
commands on their way to the engines (authkeys and passwords in clear, and whoever holds a
connection answers them), publish_endpoint the events every subscriber believes,
notices_endpoint what the daemons follow. By default they are ipc:// sockets of mode 0600 in
$ADMINBUS_HOME; on tcp:// (engines or workers on other hosts) they are CURVE with the
daemons' key, loopback included, and the broker does not start without that key.

The attacker is a real process of another OS user: `nobody`, through setpriv (the tests run
as root). It must neither receive a command nor publish an event that a subscriber sees,
whichever layout the stack uses. When it cannot be started as another user the test fails;
it is never skipped."""

import json
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from conftest import BIN, ROOT, Stack, clean_env, free_ports, running, short_dir
from test_curve import CurveStack, Handshakes
from test_worker import enqueue, wait_state

ATTACK_SECONDS = 4.0

# Run by /usr/bin/python3 as nobody, from -c: nobody may not read this tree. argv[1] is the
# plan (endpoints, nonce, seconds); it prints "ready" once its sockets are connecting, then
# one JSON line: what it could reach and what it got.
ATTACKER = r"""
import errno, json, os, socket, sys, time
import msgpack, zmq

plan = json.loads(sys.argv[1])
nonce = plan["nonce"]
out = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
       "reach": {}, "commands": [], "notices": 0, "proxied": 0, "published": 0}


def reach(ep):
    # what a plain connect to the endpoint's socket gets: connected, or the error's name
    try:
        if ep.startswith("ipc://"):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(ep[len("ipc://"):])
        else:
            host, port = ep[len("tcp://"):].rsplit(":", 1)
            s = socket.create_connection((host.strip("[]"), int(port)), timeout=2)
        s.close()
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))


for name in ("engine", "publish", "notices", "proxy"):
    if plan.get(name):
        out["reach"][name] = reach(plan[name])

ctx = zmq.Context()
def sock(kind, ep):
    s = ctx.socket(kind)
    s.linger = 0
    if kind == zmq.SUB:
        s.subscribe(b"")
    s.connect(ep)
    return s

dealer = sock(zmq.DEALER, plan["engine"])      # take commands, answer them
pub = sock(zmq.PUB, plan["publish"])           # forge events
sub = sock(zmq.SUB, plan["notices"]) if plan.get("notices") else None
proxy = sock(zmq.DEALER, plan["proxy"]) if plan.get("proxy") else None
print("ready", flush=True)

forged = [b"audit.Organisation.add", b"job.424242.done", b"worker.forged.control",
          b"wake.default", b"task.1.changed"]
body = msgpack.packb({"v": 1, "data": {"forged": nonce}}, use_bin_type=True)
poller = zmq.Poller()
for s in (dealer, sub, proxy):
    if s is not None:
        poller.register(s, zmq.POLLIN)
deadline = time.monotonic() + plan["seconds"]
next_proxy = 0.0
while time.monotonic() < deadline:
    for topic in forged:
        pub.send_multipart([topic, body])
        out["published"] += 1
    if proxy is not None and time.monotonic() >= next_proxy:
        cmd = {"v": 1, "id": "00000000-0000-4000-8000-%012x" % int(time.time()),
               "type": "auth.whoami", "auth": "x" * 40, "args": {}}
        proxy.send_multipart([b"", b"127.0.0.2", msgpack.packb(cmd, use_bin_type=True)])
        next_proxy = time.monotonic() + 0.5
    for s, _ in poller.poll(20):
        frames = s.recv_multipart()
        if s is dealer:
            cmd = msgpack.unpackb(frames[-1], raw=False)
            out["commands"].append(cmd.get("type"))
            reply = {"v": 1, "id": cmd.get("id"), "ok": True, "result": {"forged": nonce}}
            dealer.send_multipart(frames[:-2] + [msgpack.packb(reply, use_bin_type=True)])
        elif s is sub:
            out["notices"] += 1
        else:
            out["proxied"] += 1
print(json.dumps(out), flush=True)
"""


def nobody():
    return pwd.getpwnam("nobody")


def bound_endpoints(stack):
    """The internal endpoints and the proxy intake as the broker bound them (its start line;
    an older broker names no notices endpoint)."""
    deadline = time.monotonic() + 30
    pattern = re.compile(r"engines (\S+) publish (\S+)(?: notices (\S+))? proxy (\S+)")
    while True:
        m = pattern.search(Path(stack.broker.log).read_text(errors="replace"))
        if m:
            break
        assert time.monotonic() < deadline, stack.tail(stack.broker.log)
        time.sleep(0.05)
    engine, publish, notices, proxy = m.groups()
    return {"engine": engine, "publish": publish, "notices": notices,
            "proxy": None if proxy == "off" else proxy}


def start_attacker(plan):
    """The attacker as nobody; returns the process once it said "ready" (fails otherwise,
    with what setpriv or Python said)."""
    user = nobody()
    assert os.getuid() != user.pw_uid, "the tests must run as another user than nobody"
    p = subprocess.Popen(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                          "--clear-groups", "/usr/bin/python3", "-I", "-c", ATTACKER,
                          json.dumps(plan)],
                         cwd="/", env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        out, err = p.communicate(timeout=30)
        pytest.fail(f"the attacker did not start as nobody (exit {p.returncode}):\n"
                    f"{line}{out}{err}")
    return p


def finish_attacker(p):
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, f"the attacker failed:\n{out}\n{err}"
    got = json.loads(out.strip().splitlines()[-1])
    user = nobody()
    # it really ran as another user, with no group of ours
    assert got["uid"] == got["euid"] == user.pw_uid != os.getuid(), got
    assert got["gid"] == user.pw_gid and got["groups"] in ([], [user.pw_gid]), got
    assert got["published"] > 0, got
    return got


def curve_client(stack, sock, endpoint):
    """A test socket on an internal tcp:// endpoint gets the daemons' key, as a daemon."""
    if endpoint.startswith("tcp://") and endpoint in stack.endpoints.values():
        curve = stack.home / "curve"
        sock.curve_serverkey = zmq.auth.load_certificate(curve / "server.pub")[0]
        sock.curve_publickey, sock.curve_secretkey = \
            zmq.auth.load_certificate(curve / "internal.key")


def subscriber(stack, endpoint):
    s = stack.ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVHWM, 0)  # keep everything: a forged event must not be dropped
    s.setsockopt(zmq.SUBSCRIBE, b"")
    curve_client(stack, s, endpoint)
    s.connect(endpoint)
    return s


def drain(sock):
    got = []
    while sock.poll(200):
        got.append(sock.recv_multipart())
    return got


def attack_and_check(stack, probe_names):
    """Attack the running stack as nobody while sending commands and watching the events
    feed and the notices; returns the attacker's report."""
    eps = bound_endpoints(stack)
    feeds = [subscriber(stack, stack.events)]
    if eps["notices"]:
        feeds.append(subscriber(stack, eps["notices"]))
    nonce = secrets.token_hex(8)
    try:
        # the feeds are subscribed: a real event reaches each of them
        deadline = time.monotonic() + 30
        seen = [False] * len(feeds)
        while not all(seen):
            assert time.monotonic() < deadline, "the subscribers got no event"
            stack.ok("org.add", {"name": f"Endpoint warm-up {secrets.token_hex(3)}"})
            for i, f in enumerate(feeds):
                seen[i] = seen[i] or bool(drain(f))
        attacker = start_attacker({**eps, "nonce": nonce, "seconds": ATTACK_SECONDS})
        replies = []
        for name in probe_names:  # spread over the attack
            replies.append(stack.cmd("org.add", {"name": name}, timeout=10))
            time.sleep((ATTACK_SECONDS - 1) / len(probe_names))
        report = finish_attacker(attacker)
        frames = [f for feed in feeds for f in drain(feed)]
    finally:
        for f in feeds:
            f.close()
    # no command reached the attacker, and no client got its forged answer
    assert report["commands"] == [], report
    for r in replies:
        assert r.get("ok") is True and "forged" not in json.dumps(r), r
    assert stack.count("organisations", "name LIKE %s", "Endpoint probe %") == \
        len(probe_names)
    # no forged event in front of a subscriber (clients' feed or the daemons' notices), while
    # the real ones of the probes came
    assert not [f for f in frames if nonce.encode() in b"".join(f)], "a forged event came"
    assert any(f[0] == b"audit.Organisation.add" for f in frames), frames[:5]
    assert report["notices"] == 0 and report["proxied"] == 0, report
    return report


def probes():
    return [f"Endpoint probe {i}" for i in range(16)]


def private_home():
    """A home as ops/run makes it (mode 0700) in a short private folder: the default
    sockets' paths stay under the 107 bytes of a Unix socket path."""
    top = short_dir()
    home = top / "home"
    home.mkdir(mode=0o700)
    return top, home


# --- another local user ------------------------------------------------------------------------


def test_another_user_reaches_no_default_internal_endpoint(mariadb):
    """The built-in default (auto: ipc:// in $ADMINBUS_HOME), as ops/run runs it."""
    top, home = private_home()
    try:
        with running(Stack(mariadb, home, internal="auto")) as stack:
            report = attack_and_check(stack, probes())
            assert set(report["reach"].values()) == {"EACCES"}, report
            eps = bound_endpoints(stack)
            for name in ("engine", "publish", "notices", "proxy"):
                path = Path(eps[name][len("ipc://"):])
                assert path.parent == home.resolve(), eps
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, (name, path)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_another_user_reaches_no_socket_in_an_open_folder(mariadb, tmp_path):
    """Explicit ipc:// paths in a folder others may enter (0755), the broker started under
    umask 000: the sockets' own mode (0600) keeps the other user out."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    stack = Stack(mariadb, home)  # internal="ipc": stack.sockets
    old = os.umask(0)
    try:
        with running(stack):
            os.umask(old)
            stack.sockets.chmod(0o755)
            parents = [p for p in stack.sockets.parents if p != Path("/")]
            assert all(p.stat().st_mode & 0o001 for p in parents), "nobody cannot walk there"
            report = attack_and_check(stack, probes())
            assert {report["reach"][n] for n in ("engine", "publish", "notices")} == \
                {"EACCES"}, report
            for name, ep in stack.endpoints.items():
                mode = stat.S_IMODE(Path(ep[len("ipc://"):]).stat().st_mode)
                assert mode == 0o600, (name, oct(mode))
    finally:
        os.umask(old)


def test_another_user_gets_nothing_from_internal_endpoints_on_tcp(mariadb, tmp_path):
    """Internal endpoints on loopback tcp://, as for engines on other hosts: any local user
    reaches the ports, and CURVE with the daemons' key turns them away."""
    with running(Stack(mariadb, tmp_path / "home", internal="tcp")) as stack:
        report = attack_and_check(stack, probes())
        assert report["reach"]["engine"] == "connected", report  # the port, not the bus
        assert "CURVE on engine, publish, notices" in Path(stack.broker.log).read_text()


def test_notices_and_the_events_feed_share_the_intake(stack):
    """Both fan-outs get what is published; a subscriber leaving one side does not take the
    topic away from the other (the intake counts subscriptions from both)."""
    pub = stack.ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(stack.endpoints["publish"])
    notices, feed = subscriber(stack, stack.endpoints["notices"]), subscriber(stack, stack.events)

    def tags(sock):
        return [f[-1] for f in drain(sock)]

    def reaches(sock, tag):
        for _ in range(100):  # a fresh connection drops until the subscription is through
            pub.send_multipart([b"wake.shared", tag])
            if sock.poll(100):
                return tag in tags(sock)
        return False

    try:
        assert reaches(notices, b"n") and reaches(feed, b"f")
        feed.setsockopt(zmq.UNSUBSCRIBE, b"")
        # publish until one comes to the notices that the feed no longer gets: the broker
        # has then passed the feed's unsubscription on to the intake
        for i in range(100):
            tag = b"u%d" % i
            pub.send_multipart([b"wake.shared", tag])
            assert notices.poll(5000), "the notices lost the topic"
            if tag in tags(notices) and tag not in tags(feed):
                break
        else:
            pytest.fail("the feed kept receiving after it unsubscribed")
        # the intake still holds the topic for the notices
        for i in range(20):
            pub.send_multipart([b"wake.shared", b"a%d" % i])
            time.sleep(0.02)
        assert b"a19" in tags(notices)
    finally:
        for s in (pub, notices, feed):
            s.close()


# --- the daemons' key and nothing else on tcp:// -----------------------------------------------


@pytest.fixture
def cstack(mariadb, tmp_path):
    with running(CurveStack(mariadb, tmp_path / "home")) as s:
        yield s


def test_a_client_key_does_not_open_the_internal_endpoints(cstack):
    """A key allowed on the clients' endpoints is refused on the internal ones: its holder
    sends commands under its authkey, never takes other clients' commands or forges
    events."""
    server = cstack.server_key()
    public, secret = cstack.client_pair
    nonce = secrets.token_hex(8)

    def keyed(kind, endpoint):
        s = cstack.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = server, public, secret
        if kind == zmq.SUB:
            s.setsockopt(zmq.SUBSCRIBE, b"")
        handshakes.append(Handshakes(s))
        s.connect(endpoint)
        return s

    handshakes = []
    dealer = keyed(zmq.DEALER, cstack.endpoints["engine"])
    pub = keyed(zmq.PUB, cstack.endpoints["publish"])
    feed = keyed(zmq.SUB, cstack.events)  # the clients' feed, where this key belongs
    frames = []

    def probe_on_feed():
        while feed.poll(frames and 0 or 100):
            frames.append(feed.recv_multipart())
        return any(f[0] == b"audit.Organisation.add" for f in frames)

    try:
        # Both internal endpoints refuse the key's handshake: nothing can pass either way.
        handshakes[0].wait_refused("a client key on the engine endpoint")
        handshakes[1].wait_refused("a client key on the publish endpoint")
        # Forged events and probe commands, until a probe's event reaches the feed (a new
        # subscription takes a moment to reach the broker): none was forged, and no command
        # went to the client key's DEALER.
        deadline = time.monotonic() + 30
        for i in range(1000):
            pub.send_multipart([b"wake.default", nonce.encode()])
            assert cstack.ok("org.add", {"name": f"Keyed probe {i}"})
            if probe_on_feed():
                break
            assert time.monotonic() < deadline, "no probe's event reached the feed"
        assert not dealer.poll(0), "a client key took a command"
        assert not [f for f in frames if nonce.encode() in b"".join(f)]
    finally:
        for hs in handshakes:
            hs.close()
        for s in (dealer, pub, feed):
            s.close()
    log = cstack.broker_log()
    assert f"refused client key {public.decode()} from 127.0.0.1 on an internal endpoint" in log
    # the same key still works where it belongs
    assert cstack.ok("auth.whoami")


def test_a_worker_on_another_host_needs_copies_of_the_daemons_key(cstack, tmp_path):
    """"Another host" is another home with its own adminbus.conf (the same database and
    endpoints): with copies of internal.key and server.pub it runs jobs and follows its
    wake-up notices over CURVE; without them it stops and says what to copy."""
    conf = (cstack.home / "adminbus.conf").read_text()
    bare = tmp_path / "elsewhere-bare"
    bare.mkdir(mode=0o700)
    (bare / "adminbus.conf").write_text(conf)
    w = cstack.start_worker("default", wait=False, home=str(bare))
    deadline = time.monotonic() + 30
    while w.alive():
        assert time.monotonic() < deadline, cstack.tail(w.log)
        time.sleep(0.05)
    w.expected_dead = True
    text = Path(w.log).read_text()
    assert w.proc.returncode != 0 and "uses CURVE with the daemons' key" in text, text
    assert "copy curve/internal.key" in text and "curve/server.pub" in text, text
    assert not (bare / "curve" / "internal.key").exists()  # made nothing of its own

    other = tmp_path / "elsewhere"
    (other / "curve").mkdir(parents=True, mode=0o700)
    (other / "adminbus.conf").write_text(conf)
    for name in ("internal.key", "server.pub"):
        shutil.copy2(cstack.home / "curve" / name, other / "curve" / name)
    cstack.start_worker("default", home=str(other), worker_poll_ms=60000)
    jid = enqueue(cstack, "noop")  # the wake-up notice starts it: the poll is a minute
    wait_state(cstack, jid, "done", timeout=15)


# --- the broker's checks -----------------------------------------------------------------------


def broker_run(home, *flags, running_once=None):
    """adminbus-broker under home with flags: (returncode or None while it runs, stderr,
    process). With running_once, waits for that text instead of the exit."""
    log = home / "broker-alone.log"
    out = open(log, "w+")
    p = subprocess.Popen([str(BIN / "adminbus-broker"), *flags],
                         env=clean_env(ADMINBUS_HOME=home), stdout=subprocess.PIPE, stderr=out)
    deadline = time.monotonic() + 30
    while p.poll() is None and time.monotonic() < deadline:
        if running_once and running_once in log.read_text():
            break
        time.sleep(0.05)
    return p.returncode, log.read_text(), p


def stop(p):
    if p.poll() is None:
        p.terminate()
        p.wait(timeout=10)


def test_broker_refuses_tcp_internal_endpoints_without_the_daemons_key(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    ports = free_ports(3)
    flags = [f"--commands-endpoint=tcp://127.0.0.1:{ports[0]}",
             f"--events-endpoint=tcp://127.0.0.1:{ports[1]}",
             f"--engine-endpoint=tcp://127.0.0.1:{ports[2]}"]
    # hold the engine port (bound, not listening): a broker that tried to bind it would say
    # "Address already in use"; it must stop before
    hold = socket.socket()
    try:
        hold.bind(("127.0.0.1", ports[2]))
        rc, err, p = broker_run(home, *flags)
        stop(p)
        assert rc == 2, err
        assert f"engine_endpoint tcp://127.0.0.1:{ports[2]} is tcp://" in err, err
        assert "refusing to start without the daemons' CURVE key" in err, err
        assert "adminbus-broker --curve-init" in err and "copy curve/internal.key" in err.lower()
        assert "in use" not in err
    finally:
        hold.close()
    assert not (home / "curve").exists()

    # --curve-init makes the pairs; clients' endpoints stay plain (no server key to print),
    # and it says what the other hosts need
    init = subprocess.run([str(BIN / "adminbus-broker"), *flags, "--curve-init"],
                          env=clean_env(ADMINBUS_HOME=home), capture_output=True, text=True,
                          timeout=30)
    assert init.returncode == 0 and init.stdout == "", init.stdout + init.stderr
    assert "internal.key" in init.stderr and "server.pub" in init.stderr, init.stderr
    assert stat.S_IMODE((home / "curve" / "internal.key").stat().st_mode) == 0o600
    rc, err, p = broker_run(home, *flags, running_once="adminbus-broker: commands")
    try:
        assert rc is None, err
        assert "CURVE on engine: server public key" in err, err
    finally:
        stop(p)
    # a secret readable by others is no key
    (home / "curve" / "internal.key").chmod(0o644)
    rc, err, p = broker_run(home, *flags)
    stop(p)
    assert rc == 2 and "readable by others" in err, err


def test_broker_and_daemons_refuse_unsafe_internal_endpoints(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    ports = free_ports(2)
    base = [f"--commands-endpoint=tcp://127.0.0.1:{ports[0]}",
            f"--events-endpoint=tcp://127.0.0.1:{ports[1]}"]
    cases = [
        ("--engine-endpoint=ipc://engine.sock", "engine_endpoint ipc://engine.sock: the path "
         "must be absolute"),
        ("--publish-endpoint=ipc://@adminbus", "has no file permissions"),
        ("--notices-endpoint=ipc:///tmp/notices.sock", "must belong to this user (uid 0) and be "
         "writable by nobody else"),
        ("--engine-endpoint=ipc:///" + "x" * 110, "longer than the 107 bytes"),
        ("--publish-endpoint=ws://127.0.0.1:1", "publish_endpoint must be auto, ipc:///PATH or "
         "tcp://HOST:PORT"),
    ]
    hold = socket.socket()
    try:
        hold.bind(("127.0.0.1", ports[0]))  # nothing may be bound before the checks
        for flag, why in cases:
            rc, err, p = broker_run(home, *base, flag)
            stop(p)
            assert rc == 2 and why in err, (flag, err)
            assert "in use" not in err, (flag, err)
    finally:
        hold.close()

    # auto with a home too long for a socket path: the broker, the engine and a worker each
    # stop and say what to set
    long_home = tmp_path / ("h" * (110 - len(str(tmp_path))))
    long_home.mkdir(mode=0o700)
    rc, err, p = broker_run(long_home, *base)
    stop(p)
    assert rc == 2 and "engine.sock is longer than the 107 bytes" in err, err
    assert "set engine_endpoint=ipc:///SHORT/PATH" in err, err
    env = clean_env(ADMINBUS_HOME=long_home, ADMINBUS_DB_DSN="mariadb://nobody@/none")
    for argv, needle in (([str(BIN / "adminbus-engine")], "engine.sock is longer"),
                         ([str(BIN / "adminbus-worker"), "--queue", "default"],
                          "publish.sock is longer")):
        d = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert d.returncode != 0 and needle in d.stderr, (argv, d.stderr)


# --- ops/run ---------------------------------------------------------------------------------


def test_ops_run_puts_the_internal_endpoints_in_the_home(mariadb):
    """ops/run --detach, on a home an older ops/run set up with loopback tcp:// internal
    endpoints: it drops those lines (the defaults take over), the broker binds private
    sockets in the home, the stack works (a job's wake-up goes through the notices), and
    nobody else reaches them."""
    top, home = private_home()
    database = "t_" + secrets.token_hex(6)
    admin = mariadb.connect()
    with admin.cursor() as c:
        c.execute(f"CREATE DATABASE `{database}`")
    admin.close()
    ports = free_ports(4)
    (home / "adminbus.conf").write_text(
        f"db_dsn={mariadb.dsn_for(database)}\n"
        f"commands_endpoint=tcp://127.0.0.1:{ports[0]}\n"
        f"events_endpoint=tcp://127.0.0.1:{ports[1]}\n"
        f"engine_endpoint=tcp://127.0.0.1:{ports[2]}\n"
        f"publish_endpoint=tcp://127.0.0.1:{ports[3]}\n"
        "workers=default:1\nworker_grace_s=2\n")
    home.chmod(0o755)  # ops/run makes it private again
    env = clean_env(ADMINBUS_HOME=home, ADMINBUS_BUILD=str(BIN.parent))
    try:
        run = subprocess.run([str(ROOT / "ops" / "run"), "--detach", "--no-build"], env=env,
                             capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "engine_endpoint" in run.stderr and "ipc://" in run.stderr, run.stderr
        conf = (home / "adminbus.conf").read_text()
        assert "engine_endpoint" not in conf and "publish_endpoint" not in conf, conf
        assert f"commands_endpoint=tcp://127.0.0.1:{ports[0]}" in conf  # clients' kept
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        log = (home / "log" / "broker.log").read_text()
        real = home.resolve()
        assert f"engines ipc://{real}/engine.sock publish ipc://{real}/publish.sock notices " \
            f"ipc://{real}/notices.sock proxy ipc://{real}/proxy.sock" in log, log
        for name in ("engine", "publish", "notices", "proxy"):
            assert stat.S_IMODE((home / f"{name}.sock").stat().st_mode) == 0o600, name
        ctl = subprocess.run([str(BIN / "adminctl"), "--json", "job", "enqueue", "noop"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert ctl.returncode == 0, ctl.stderr
        jid = json.loads(ctl.stdout)["id"]
        db = mariadb.connect(database)
        deadline = time.monotonic() + 30
        while True:
            with db.cursor() as c:
                c.execute("SELECT state FROM jobs WHERE id = %s", (jid,))
                if c.fetchone()["state"] == "done":
                    break
            assert time.monotonic() < deadline, (home / "log" / "supervisor.log").read_text()
            time.sleep(0.1)
        db.close()
        eps = {n: f"ipc://{real}/{n}.sock" for n in ("engine", "publish", "notices", "proxy")}
        attacker = start_attacker({**eps, "nonce": secrets.token_hex(8), "seconds": 1.0})
        report = finish_attacker(attacker)
        assert set(report["reach"].values()) == {"EACCES"}, report
        assert report["commands"] == [] and report["notices"] == 0, report
    finally:
        stop_run = subprocess.run([str(ROOT / "ops" / "stop")], env=env, capture_output=True,
                                  text=True, timeout=180)
        admin = mariadb.connect()
        with admin.cursor() as c:
            c.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()
        shutil.rmtree(top, ignore_errors=True)
    assert stop_run.returncode == 0, stop_run.stdout + stop_run.stderr
