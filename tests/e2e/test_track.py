"""`adminctl job track` in a real terminal (a pty): a live progress bar redrawn in place,
then the final state and exit code 0 (issue 3, acceptance 5)."""

import os
import pty
import re
import select
import subprocess
import time

from conftest import BIN


def run_in_pty(argv, env, timeout=60):
    """Run argv with stdout/stderr on a pty; return (exit code, everything it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                            close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_track_draws_a_live_bar_in_a_terminal(stack):
    stack.start_worker("default")
    # long enough that a slow start of adminctl (ASan, a loaded machine) still sees it run
    job = stack.ok("job.enqueue", {"type": "sleep", "args": {"ms": 6000}})["id"]
    env = dict(stack.env, ADMINBUS_URL=stack.url, ADMINBUS_AUTHKEY=stack.key,
               ADMINBUS_EVENTS=stack.events, TERM="xterm")
    rc, out = run_in_pty([str(BIN / "adminctl"), "job", "track", str(job)], env)
    assert rc == 0, out
    frames = [f for f in out.split("\r") if f.strip()]
    bars = [re.search(r"\[([#.]{30})\]\s+(\d+)%", f) for f in frames]
    percents = [int(b.group(2)) for b in bars if b]
    # redrawn in place several times while the job ran, never going backwards, ending at 100
    assert len(set(percents)) >= 3, out
    assert percents == sorted(percents) and percents[-1] == 100, out
    assert "done" in frames[-1]
    assert stack.rows("SELECT state FROM jobs WHERE id = %s", job)[0]["state"] == "done"


def test_track_exits_1_for_a_failed_job(stack):
    stack.start_worker("default")
    job = stack.ok("job.enqueue", {"type": "sleep", "args": {"fatal": True}})["id"]
    rc, out, err = stack.adminctl("job", "track", str(job))
    assert rc == 1, (out, err)
    assert "failed" in out
