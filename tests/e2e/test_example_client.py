"""The example automation client of docs/protocol.md runs against the real stack."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_example_client(stack):
    env = dict(stack.env, ADMINBUS_URL=stack.url, ADMINBUS_AUTHKEY=stack.key)
    p = subprocess.run([sys.executable, str(HERE / "example_client.py"), "Example CERT"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "added organisation" in p.stdout and "Example CERT" in p.stdout, p.stdout
    rows = stack.rows("SELECT * FROM organisations WHERE name = 'Example CERT'")
    assert len(rows) == 1 and rows[0]["nationality"] == "LU"
    assert stack.count("logs", "model = 'Organisation' AND action = 'add' AND model_id = %s",
                       rows[0]["id"]) == 1
    # run again: the name is taken, the client says so and exits 1
    p = subprocess.run([sys.executable, str(HERE / "example_client.py"), "Example CERT"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "conflict" in p.stderr, p.stdout + p.stderr
