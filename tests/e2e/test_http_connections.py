"""The HTTP shim under connection floods: one address cannot hold more than
--per-ip-connections (64), a request head must be complete within --header-timeout (10 s),
and the last --reserved-connections go to addresses that hold none, so a client on
another address is served while one address holds hundreds of idle or slow connections.

The flooding clients are on 127.0.0.1, the legitimate ones on 127.0.0.2 and 127.0.0.3
(curl --interface, or a socket bound there): Linux routes all of 127/8 to loopback."""

import errno
import resource
import socket
import subprocess
import threading
import time

from conftest import BIN, clean_env

SLOW_HEAD = b"GET /users/view/me HTTP/1.1\r\nHost: x\r\nX-Slow: "


def enough_files(n):
    """Raise this process's soft limit on open files to the hard one; it must allow n."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == resource.RLIM_INFINITY or soft >= n, \
        f"this test opens {n} sockets: raise the hard limit on open files (ulimit -Hn)"


def host_port(base):
    host, port = base.split("//")[1].split(":")
    return host, int(port)


def connect(base, source="127.0.0.1", send=b""):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(host_port(base))
    if send:
        s.sendall(send)
    return s


def state(s):
    """'open' (nothing from the server yet), 'closed' (it closed without a word) or the
    bytes it sent."""
    try:
        got = s.recv(4096, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return "open"
    except OSError as e:
        if e.errno in (errno.ECONNRESET, errno.EPIPE):
            return "closed"
        raise
    return got or "closed"


def wait_settled(socks, want_open, timeout=15):
    """Wait until exactly want_open of socks are still open (the others refused)."""
    deadline = time.monotonic() + timeout
    while True:
        states = [state(s) for s in socks]
        n_open = states.count("open")
        if n_open == want_open or time.monotonic() > deadline:
            return n_open, states
        time.sleep(0.1)


def served_from(base, key, source):
    """GET /users/view/me from the address source: (status, seconds)."""
    start = time.monotonic()
    p = subprocess.run(["curl", "-sS", "--interface", source, "-m", "20", "-o", "/dev/null",
                        "-w", "%{http_code}", "-H", f"Authorization: {key}",
                        base + "/users/view/me"], capture_output=True, text=True, timeout=30)
    return p.stdout.strip(), time.monotonic() - start


class SlowHeads:
    """Up to n connections from 127.0.0.1 that send a request head one byte every 0.5 s and
    never finish it; each one the server closes (refused, or cut at the deadline) is opened
    again. held[i] is how many were open in round i; answers lists (seconds it lived, what
    the server sent) for each one the server answered before closing it."""

    def __init__(self, base, n):
        self.base, self.n = base, n
        self.held, self.answers = [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def open(self):
        try:
            return connect(self.base, send=SLOW_HEAD), time.monotonic()
        except OSError:
            return None, time.monotonic()

    def run(self):
        slots = [self.open() for _ in range(self.n)]
        while not self.stop.wait(0.5):
            held = 0
            for i, (s, since) in enumerate(slots):
                st = state(s) if s else "closed"
                if st == "open":
                    try:
                        s.send(b"x")
                        held += 1
                        continue
                    except OSError:
                        st = "closed"
                if isinstance(st, bytes):
                    self.answers.append((time.monotonic() - since, st))
                if s:
                    s.close()
                slots[i] = self.open()
            self.held.append(held)
        for s, _ in slots:
            if s:
                s.close()


def test_one_address_cannot_shut_the_others_out(stack):
    """Defaults: 600 idle connections from one address, then 600 slow heads renewed as they
    are cut: the address holds 64, the 65th and later are refused at once, each held one
    is cut at 10 s (a slow head with a JSON 408; a silent one may meet the idle timeout,
    also 10 s, first), and a client on 127.0.0.2 is served throughout."""
    enough_files(1400)
    h = stack.start_http()
    base, key = h.base, stack.key
    opened = time.monotonic()
    idle = [connect(base) for _ in range(600)]
    slow = SlowHeads(base, 600)
    cut_at = {}  # idle socket index -> (seconds after opening, what the server sent)
    try:
        n_open, states = wait_settled(idle, 64)
        assert n_open == 64, f"{n_open} of 600 idle connections from one address held"
        assert states.count("closed") == 600 - 64, states
        status, took = served_from(base, key, "127.0.0.2")
        assert status == "200" and took < 5, (status, took)
        # one more from the same address is refused at once
        extra = connect(base)
        assert wait_settled([extra], 0, timeout=5)[0] == 0
        extra.close()

        slow.thread.start()
        rounds = 0
        while time.monotonic() - opened < 23:
            status, took = served_from(base, key, "127.0.0.2")
            assert status == "200" and took < 5, (status, took, rounds)
            rounds += 1
            for i, s in enumerate(idle):
                if states[i] == "open" and i not in cut_at:
                    st = state(s)
                    if st != "open":
                        cut_at[i] = (time.monotonic() - opened, st)
            time.sleep(0.3)
    finally:
        slow.stop.set()
        if slow.thread.ident is not None:
            slow.thread.join(timeout=60)
        for s in idle:
            s.close()
    assert rounds >= 15, rounds
    # the 64 held idle connections were cut at 10 s
    assert len(cut_at) == 64, cut_at
    for t, got in cut_at.values():
        assert got == "closed" or got.startswith(b"HTTP/1.1 408 "), got
        assert 9 <= t <= 13.5, t
    # the slow heads took their places once they were free, never more than 64, and the
    # first of them were cut at the head's deadline with the JSON 408
    assert max(slow.held) == 64, slow.held
    assert len(slow.answers) >= 32, slow.answers
    for t, got in slow.answers:
        assert got.startswith(b"HTTP/1.1 408 "), got
        assert b"request head (request line and headers) was not complete within 10 s" in got
        assert 9 <= t <= 13.5, t
    assert h.alive()
    assert "(the last from 127.0.0.1: it holds --per-ip-connections already)" in \
        h.log.read_text()


def test_idle_connections_cut_at_the_head_deadline(stack):
    """The 64 idle connections an address may hold are answered 408 at --header-timeout."""
    enough_files(200)
    h = stack.start_http(header_timeout=2, idle_timeout=30)
    idle = [connect(h.base) for _ in range(70)]
    try:
        opened = time.monotonic()
        n_open, _ = wait_settled(idle, 64)
        assert n_open == 64
        n_open, states = wait_settled(idle, 0, timeout=10)
        took = time.monotonic() - opened
        assert n_open == 0 and 1.5 < took < 6, (n_open, took)
        answers = [s for s in states if isinstance(s, bytes)]
        assert len(answers) == 64, states
        assert all(a.startswith(b"HTTP/1.1 408 ") and b"within 2 s" in a for a in answers)
    finally:
        for s in idle:
            s.close()


def test_an_idle_keep_alive_connection_is_closed_without_a_408(stack):
    """After a response, a connection waiting for its next request is closed at the head's
    deadline without a word: its client may not have begun one, and would read a 408 as
    the answer to the request it sends next."""
    h = stack.start_http(header_timeout=2, idle_timeout=30)
    s = connect(h.base, send=b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        got = b""
        while b"\r\n\r\n" not in got or not got.endswith(b"}\n"):
            chunk = s.recv(4096)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 "), got
        start = time.monotonic()
        n_open, states = wait_settled([s], 0, timeout=10)
        assert n_open == 0 and states == ["closed"], states
        assert 1.5 < time.monotonic() - start < 5
    finally:
        s.close()


def test_slow_head_and_slow_body_have_their_own_deadlines(stack):
    """--header-timeout bounds the request head, --request-timeout the whole request."""
    h = stack.start_http(header_timeout=2, request_timeout=5)

    def trickle(head):
        s = connect(h.base, send=head)
        start = time.monotonic()
        try:
            while time.monotonic() - start < 30:
                st = state(s)
                if st != "open":
                    return st, time.monotonic() - start
                s.send(b"x")
                time.sleep(0.3)
        finally:
            s.close()
        raise AssertionError("never cut")

    got, took = trickle(SLOW_HEAD)
    assert got.startswith(b"HTTP/1.1 408 ") and b"head" in got and b"within 2 s" in got, got
    assert 1.5 < took < 4.5, took
    got, took = trickle(b"POST /admin/organisations/add HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 500\r\n"
                        b"Authorization: " + stack.key.encode() + b"\r\n\r\n{")
    assert got.startswith(b"HTTP/1.1 408 ") and b"within 5 s" in got, got
    assert b"head" not in got and 4.5 < took < 8, (got, took)
    assert stack.count("organisations") == 1


def test_reserved_slots_go_to_addresses_that_hold_none(stack):
    """Near the total, an address that already holds a connection gets no more: the last
    --reserved-connections are for newcomers."""
    enough_files(200)
    h = stack.start_http(max_connections=40, per_ip_connections=30, reserved_connections=10)
    base, key = h.base, stack.key
    held = {}
    try:
        held["127.0.0.1"] = [connect(base, "127.0.0.1") for _ in range(35)]
        assert wait_settled(held["127.0.0.1"], 30)[0] == 30  # its own limit
        # 30 of 40 open: only the 10 reserved are left, for addresses that hold none
        held["127.0.0.3"] = [connect(base, "127.0.0.3") for _ in range(5)]
        assert wait_settled(held["127.0.0.3"], 1)[0] == 1
        status, took = served_from(base, key, "127.0.0.2")
        assert status == "200" and took < 5, (status, took)
        held["127.0.0.4"] = [connect(base, "127.0.0.4") for _ in range(3)]
        assert wait_settled(held["127.0.0.4"], 1)[0] == 1
    finally:
        for socks in held.values():
            for s in socks:
                s.close()
    # the first refusal is said at once (the next ones in a count at most every 10 s)
    assert ("refused 1 connection(s) since the last report (the last from 127.0.0.1: it holds "
            "--per-ip-connections already)") in h.log.read_text()


def test_connection_options_are_checked(stack):
    env = clean_env(ADMINBUS_HOME=stack.home)
    p = subprocess.run([str(BIN / "adminbus-http"), "--url", stack.url, "--events",
                        stack.events, "--max-connections", "100", "--reserved-connections",
                        "100"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    assert "--reserved-connections (100) must be below --max-connections (100)" in p.stderr
    p = subprocess.run([str(BIN / "adminbus-http"), "--help"], env=env, capture_output=True,
                       text=True, timeout=30)
    for flag in ("--per-ip-connections", "--reserved-connections", "--header-timeout"):
        assert flag in p.stdout, p.stdout
    assert "(default\n                          64" in p.stdout, p.stdout
