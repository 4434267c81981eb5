"""ZeroMQ CURVE on the bus (issue 7, "ZeroMQ beyond loopback"; docs/architecture.md).

The stack here runs with curve=on, which puts CURVE on the clients' tcp:// endpoints,
loopback too: that is how these tests exercise what an endpoint bound beyond loopback gets,
without listening beyond loopback. Its internal endpoints are tcp:// too (always CURVE,
with the daemons' key), as for engines and workers on other hosts. The engine, workers and
adminctl --local connect with the internal key pair; clients with a key from `adminctl
curve keygen` that `adminctl curve allow` listed."""

import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth
import zmq.utils.monitor

from conftest import BIN, Stack, free_ports, running

HERE = Path(__file__).resolve().parent


def curve_tool(env, *args):
    p = subprocess.run([str(BIN / "adminctl"), "curve", *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


class CurveStack(Stack):
    """A stack with curve=on, its internal endpoints on tcp:// (CURVE with the daemons' key)
    and one allowed client key (self.client_keyfile)."""

    def __init__(self, mariadb, home):
        super().__init__(mariadb, home, internal="tcp")
        self.extra_conf = "curve=on\n"
        home.mkdir(parents=True, exist_ok=True)
        self.client_keyfile = home / "client.key"
        rc, out, err = curve_tool(self.env, "keygen", self.client_keyfile)
        assert rc == 0, err
        self.client_public = out.strip()
        rc, out, err = curve_tool(self.env, "allow", self.client_public, "the test client")
        assert rc == 0, err
        self.client_pair = zmq.auth.load_certificate(self.client_keyfile)

    def server_key(self, timeout=30):
        """The broker's public key, from the server.pub it writes at start."""
        path = self.home / "curve" / "server.pub"
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert time.monotonic() < deadline, f"no {path}"
            time.sleep(0.05)
        return zmq.auth.load_certificate(path)[0]

    def client_options(self, sock):
        set_curve(sock, self.server_key(), *self.client_pair)

    def client_env(self):
        return {"ADMINBUS_CURVE_SERVERKEY": self.server_key().decode(),
                "ADMINBUS_CURVE_KEYFILE": str(self.client_keyfile)}

    def broker_log(self):
        return Path(self.broker.log).read_text(errors="replace")


def set_curve(sock, server, public, secret):
    sock.curve_serverkey = server
    sock.curve_publickey = public
    sock.curve_secretkey = secret


@pytest.fixture
def cstack(mariadb, tmp_path):
    with running(CurveStack(mariadb, tmp_path / "home")) as s:
        yield s


HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL |
                    zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class Handshakes:
    """How the server answered a socket's handshakes, from the socket's monitor (made before
    the socket connects). A connection whose handshake failed carries nothing, so a refusal
    is the moment after which no reply or event can come: no silence to wait out."""

    def __init__(self, sock):
        self.sock = sock
        self.mon = sock.get_monitor_socket(HANDSHAKE_FAILED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.failed = self.succeeded = 0

    def pump(self, timeout_ms=0):
        while self.mon.poll(timeout_ms):
            ev = zmq.utils.monitor.recv_monitor_message(self.mon)["event"]
            self.failed += bool(ev & HANDSHAKE_FAILED)
            self.succeeded += bool(ev & zmq.EVENT_HANDSHAKE_SUCCEEDED)
            timeout_ms = 0

    def refused(self):
        """True once a handshake failed and none succeeded."""
        self.pump()
        return self.failed > 0 and self.succeeded == 0

    def wait_refused(self, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not self.refused():
            assert self.succeeded == 0, f"{what}: the server accepted the handshake"
            assert time.monotonic() < deadline, f"{what}: no handshake refused within {timeout}s"
            self.pump(100)

    def close(self):
        self.sock.disable_monitor()
        self.mon.close()


def ask(stack, keys=None, timeout=30.0):
    """auth.whoami on a fresh DEALER with keys (server, public, secret) or none: the decoded
    reply, or None once the server has refused the connection's handshake."""
    s = stack.ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if keys:
        set_curve(s, *keys)
    hs = Handshakes(s)
    s.connect(stack.url)
    try:
        s.send_multipart([b"", msgpack.packb(stack.command("auth.whoami"))])
        deadline = time.monotonic() + timeout
        while not s.poll(0):
            if hs.refused():
                return None
            assert time.monotonic() < deadline, \
                f"neither a reply nor a refused handshake within {timeout}s"
            zmq.select([s, hs.mon], [], [], 0.1)
        return msgpack.unpackb(s.recv_multipart()[-1])
    finally:
        hs.close()
        s.close()


def wait_log(stack, needle, timeout=10):
    deadline = time.monotonic() + timeout
    while needle not in stack.broker_log():
        assert time.monotonic() < deadline, f"no {needle!r} in the broker's log:\n" + \
            stack.tail(stack.broker.log)
        time.sleep(0.05)


def test_key_files_and_their_modes(cstack):
    home = cstack.home
    for name, mode in (("server.key", 0o600), ("internal.key", 0o600),
                       ("server.pub", 0o644)):
        assert stat.S_IMODE((home / "curve" / name).stat().st_mode) == mode, name
    assert stat.S_IMODE((home / "curve").stat().st_mode) == 0o700
    assert stat.S_IMODE(cstack.client_keyfile.stat().st_mode) == 0o600
    # the public certificate holds no secret; the server's key pair matches it
    assert b"secret-key" not in (home / "curve" / "server.pub").read_bytes()
    pub, sec = zmq.auth.load_certificate(home / "curve" / "server.key")
    assert pub == cstack.server_key() and sec and zmq.curve_public(sec) == pub
    rc, out, _ = curve_tool(cstack.env, "server-key")
    assert rc == 0 and out.strip().encode() == pub
    assert "CURVE on commands, events, engine, publish, notices: server public key " \
        f"{pub.decode()}" \
        in cstack.broker_log()
    # the secret keys appear in no log
    secret = cstack.client_pair[1].decode()
    for log in home.glob("*.log"):
        text = log.read_text(errors="replace")
        assert secret not in text and sec.decode() not in text, log


def test_allowed_key_gets_replies(cstack):
    assert cstack.ok("auth.whoami")["user"]["email"]
    rc, out, err = cstack.adminctl("whoami")
    assert rc == 0, err
    # the key pair may also come as two variables (no key file)
    env = {"ADMINBUS_CURVE_KEYFILE": "", "ADMINBUS_CURVE_PUBLICKEY": cstack.client_public,
           "ADMINBUS_CURVE_SECRETKEY": cstack.client_pair[1].decode()}
    p = subprocess.run([str(BIN / "adminctl"), "whoami"], capture_output=True, text=True,
                       env=dict(cstack.env, ADMINBUS_URL=cstack.url, ADMINBUS_AUTHKEY=cstack.key,
                                ADMINBUS_CURVE_SERVERKEY=cstack.server_key().decode(), **env),
                       timeout=30)
    assert p.returncode == 0, p.stderr
    # the daemons connect with the internal key: the engine answers (engine endpoint), and
    # its bus probe goes out through the intake and back through the fan-out
    r = cstack.ok("diagnostics.run")
    bus = [c for c in r["checks"] if c["name"] == "bus"][0]
    assert bus["status"] == "ok" and "came back" in bus["found"], bus
    cstack.start_worker("default")
    rc, out, err = cstack.adminctl("--local", "org", "add", "--name", "Local CURVE")
    assert rc == 0, err


def test_no_key_or_unlisted_key_gets_nothing(cstack):
    before = cstack.count("command_ids")
    assert ask(cstack, None) is None  # plain client: no handshake at all
    public, secret = zmq.curve_keypair()
    assert ask(cstack, (cstack.server_key(), public, secret)) is None
    wait_log(cstack, f"refused client key {public.decode()} from 127.0.0.1")
    # adminctl with an unlisted key: no reply, exit 3
    other = cstack.home / "other.key"
    rc, out, _ = curve_tool(cstack.env, "keygen", other)
    assert rc == 0
    p = subprocess.run([str(BIN / "adminctl"), "--timeout", "1", "whoami"], capture_output=True,
                       text=True, timeout=30,
                       env=dict(cstack.env, ADMINBUS_URL=cstack.url, ADMINBUS_AUTHKEY=cstack.key,
                                ADMINBUS_CURVE_SERVERKEY=cstack.server_key().decode(),
                                ADMINBUS_CURVE_KEYFILE=str(other)))
    assert p.returncode == 3, p.stderr
    assert f"adminctl curve allow '{out.strip()}'" in p.stderr  # what to ask for, no secret
    assert zmq.auth.load_certificate(other)[1].decode() not in p.stderr
    wait_log(cstack, f"refused client key {out.strip()}")
    # a key known to the server but with the wrong secret cannot complete the handshake
    assert ask(cstack, (cstack.server_key(), cstack.client_pair[0], secret)) is None
    assert cstack.count("command_ids") == before  # nothing reached the engine
    assert ask(cstack, (cstack.server_key(), *cstack.client_pair), timeout=10)["ok"] is True


def test_revoked_key_refused_for_new_connections(cstack):
    keys = (cstack.server_key(), *cstack.client_pair)
    assert ask(cstack, keys, timeout=10)["ok"] is True
    rc, out, err = curve_tool(cstack.env, "revoke", cstack.client_keyfile)
    assert rc == 0 and "revoked" in out, err
    assert cstack.client_public not in (cstack.home / "curve" / "allowed_clients").read_text()
    assert ask(cstack, keys) is None
    wait_log(cstack, f"refused client key {cstack.client_public}")
    rc, _, err = curve_tool(cstack.env, "revoke", cstack.client_public)
    assert rc == 1 and "is not in" in err
    rc, out, err = curve_tool(cstack.env, "allow", cstack.client_public)
    assert rc == 0, err
    assert ask(cstack, keys, timeout=10)["ok"] is True


def test_events_subscriber_with_key(cstack):
    env = dict(cstack.env, ADMINBUS_EVENTS=cstack.events, **cstack.client_env())
    mon = subprocess.Popen([str(BIN / "adminctl"), "events", "--topic", "audit.Organisation.",
                            "--count", "1", "--timeout", "30"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    plain = cstack.ctx.socket(zmq.SUB)  # no key: never gets an event
    plain.setsockopt(zmq.LINGER, 0)
    plain.setsockopt(zmq.SUBSCRIBE, b"")
    handshakes = Handshakes(plain)
    plain.connect(cstack.events)
    try:
        deadline = time.monotonic() + 30
        i = 0
        while mon.poll() is None and time.monotonic() < deadline:
            cstack.ok("org.add", {"name": f"CURVE watched {i}"})
            i += 1
            time.sleep(0.2)
        out, err = mon.communicate(timeout=30)
        assert mon.returncode == 0, err
        assert "audit.Organisation." in out, out
        handshakes.wait_refused("a subscriber without a key")
        assert not plain.poll(0)
    finally:
        handshakes.close()
        if mon.poll() is None:
            mon.kill()
            mon.wait()
        plain.close()


def test_example_client_with_a_key(cstack):
    env = dict(cstack.env, ADMINBUS_URL=cstack.url, ADMINBUS_AUTHKEY=cstack.key,
               **cstack.client_env())
    p = subprocess.run([sys.executable, str(HERE / "example_client.py"), "Curve CERT"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "added organisation" in p.stdout and "Curve CERT" in p.stdout
    assert cstack.count("organisations", "name = 'Curve CERT'") == 1
    # without the key the example gets no reply (it gives up after its attempts)
    env.pop("ADMINBUS_CURVE_SERVERKEY")
    p = subprocess.run([sys.executable, "-c",
                        "import sys; sys.argv=['x','Curve CERT 2']; import example_client as e; "
                        "import zmq; ctx=zmq.Context();\n"
                        "try:\n e.call(ctx, 'org.list', {}, timeout_ms=500, attempts=2)\n"
                        "except TimeoutError:\n sys.exit(7)\n"],
                       env=dict(env, PYTHONPATH=str(HERE)), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 7, p.stdout + p.stderr


def test_client_settings_errors(cstack):
    base = dict(cstack.env, ADMINBUS_URL=cstack.url, ADMINBUS_AUTHKEY=cstack.key)
    cases = [
        ({"ADMINBUS_CURVE_SERVERKEY": cstack.server_key().decode()}, "no client key"),
        ({"ADMINBUS_CURVE_SERVERKEY": "short", "ADMINBUS_CURVE_KEYFILE":
          str(cstack.client_keyfile)}, "ADMINBUS_CURVE_SERVERKEY must be 40 Z85 characters"),
        ({"ADMINBUS_CURVE_SERVERKEY": cstack.server_key().decode(),
          "ADMINBUS_CURVE_KEYFILE": str(cstack.home / "missing.key")}, "cannot read the key"),
    ]
    for extra, needle in cases:
        p = subprocess.run([str(BIN / "adminctl"), "whoami"], env=dict(base, **extra),
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and needle in p.stderr, (extra, p.stderr)
    # a public key that is not the secret's
    other_public = zmq.curve_keypair()[0].decode()
    p = subprocess.run([str(BIN / "adminctl"), "whoami"], capture_output=True, text=True,
                       env=dict(base, ADMINBUS_CURVE_SERVERKEY=cstack.server_key().decode(),
                                ADMINBUS_CURVE_PUBLICKEY=other_public,
                                ADMINBUS_CURVE_SECRETKEY=cstack.client_pair[1].decode()),
                       timeout=30)
    assert p.returncode == 2 and "is not the public key of" in p.stderr, p.stderr
    # a key file readable by others is refused (it holds a secret)
    loose = cstack.home / "loose.key"
    loose.write_bytes(cstack.client_keyfile.read_bytes())
    loose.chmod(0o644)
    p = subprocess.run([str(BIN / "adminctl"), "whoami"], capture_output=True, text=True,
                       env=dict(base, ADMINBUS_CURVE_SERVERKEY=cstack.server_key().decode(),
                                ADMINBUS_CURVE_KEYFILE=str(loose)), timeout=30)
    assert p.returncode == 2 and "readable by others" in p.stderr, p.stderr


def test_keygen_never_shows_the_secret(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINBUS_")}
    env["ADMINBUS_HOME"] = str(tmp_path)
    path = tmp_path / "k.key"
    rc, out, err = curve_tool(env, "keygen", path)
    assert rc == 0, err
    public, secret = zmq.auth.load_certificate(path)
    assert out.strip().encode() == public and zmq.curve_public(secret) == public
    assert secret.decode() not in out + err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rc, _, err = curve_tool(env, "keygen", path)
    assert rc == 1 and "never overwritten" in err
    assert zmq.auth.load_certificate(path) == (public, secret)
    rc, _, err = curve_tool(env, "allow", "not-a-key")
    assert rc == 2 and "neither a Z85 public key" in err
    rc, _, err = curve_tool(env)
    assert rc == 2
    # allow takes a key file too, and an allowed-clients file keeps comments
    rc, out, err = curve_tool(env, "allow", path, "ops laptop")
    assert rc == 0, err
    text = (tmp_path / "curve" / "allowed_clients").read_text()
    assert f"{public.decode()}  # ops laptop" in text and secret.decode() not in text


def broker(home, ports, commands, *flags):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINBUS_")}
    env["ADMINBUS_HOME"] = str(home)
    argv = [str(BIN / "adminbus-broker"), "--commands-endpoint", commands,
            "--events-endpoint", f"tcp://127.0.0.1:{ports[1]}",
            "--engine-endpoint", f"tcp://127.0.0.1:{ports[2]}",
            "--publish-endpoint", f"tcp://127.0.0.1:{ports[3]}", *flags]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


def test_broker_refuses_beyond_loopback_without_keys(tmp_path):
    ports = free_ports(4)
    # Hold the port the broker is told to bind beyond loopback (bound, never listening): had
    # the broker tried to bind, it would say "Address already in use"; it must stop first.
    hold = socket.socket()
    try:
        hold.bind(("0.0.0.0", ports[0]))
        for commands in (f"tcp://0.0.0.0:{ports[0]}", f"tcp://*:{ports[0]}"):
            p = broker(tmp_path, ports, commands)
            assert p.returncode == 2, p.stderr
            assert f"commands_endpoint {commands} needs CURVE: it is bound beyond loopback" \
                in p.stderr, p.stderr
            assert "refusing to start without CURVE client keys" in p.stderr
            assert "events_endpoint" in p.stderr  # its pair follows it
            assert "in use" not in p.stderr
    finally:
        hold.close()
    assert not (tmp_path / "curve" / "server.key").exists()  # stopped before any key
    # with curve=on, a malformed allowed-clients file is refused with its line number
    (tmp_path / "curve").mkdir(mode=0o700)
    (tmp_path / "curve" / "allowed_clients").write_text("# ops\nnot a key\n")
    p = broker(tmp_path, ports, f"tcp://127.0.0.1:{ports[0]}", "--curve", "on")
    assert p.returncode == 2 and "allowed_clients:2: not a Z85 public key" in p.stderr, p.stderr
    p = broker(tmp_path, ports, f"tcp://127.0.0.1:{ports[0]}", "--curve", "sometimes")
    assert p.returncode == 2 and "curve must be auto or on" in p.stderr, p.stderr


def test_plain_loopback_needs_no_key(stack):
    """The default: loopback endpoints without curve=on stay plain, no key files made."""
    assert stack.ok("auth.whoami")
    assert not (stack.home / "curve").exists()
    p = subprocess.run([str(BIN / "adminbus-broker"), "--curve-init"], env=stack.env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout == "", p.stdout + p.stderr
