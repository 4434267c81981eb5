"""The server half of the loopback test servers (keyserver.py, smtp_sink.py): each starts
its server in a thread on 127.0.0.1:PORT, then calls serve_until_signal, which says "ready
PORT" on stdout (what helpers.LoopServer, the test side, waits for) and stops the server
on SIGTERM or SIGINT. No third-party imports: the scripts run as plain programs."""

import signal
import threading


def serve_until_signal(port, stop_server):
    """Print "ready PORT", wait for SIGTERM/SIGINT, then call stop_server()."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", port, flush=True)
    stop.wait()
    stop_server()
