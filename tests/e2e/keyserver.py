#!/usr/bin/python3
"""A GnuPG key server on loopback for the key-fetching tests: HKP and a Web Key Directory
in one plain-HTTP server (Python's http.server).

    keyserver.py --port PORT --dir DIR

    GET /pks/lookup?op=get&search=ADDRESS       DIR/hkp/ADDRESS (armoured) or 404
    GET /.well-known/openpgpkey/DOMAIN/hu/HASH  DIR/wkd/DOMAIN/HASH (binary) or 404
    (the WKD "advanced" layout; ?l=LOCAL is logged and otherwise ignored)

DIR/status (when present) holds an HTTP status every request is answered with instead (a
broken server). Every request line is appended to DIR/requests.log. Prints "ready PORT"
when it listens; stops on SIGTERM.
"""

import argparse
import os
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loopserver import serve_until_signal


def handler_for(folder):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def _send(self, status, body=b"", ctype="text/plain"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _file(self, path, ctype):
            try:
                with open(path, "rb") as f:
                    self._send(200, f.read(), ctype)
            except (FileNotFoundError, IsADirectoryError):
                self._send(404, b"No such key\n")

        def do_GET(self):
            with open(os.path.join(folder, "requests.log"), "a") as log:
                log.write(self.path + "\n")
            forced = os.path.join(folder, "status")
            if os.path.exists(forced):
                self._send(int(open(forced).read().strip()), b"broken on purpose\n")
                return
            url = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(url.query)
            m = re.fullmatch(r"/\.well-known/openpgpkey/([a-z0-9.-]+)/hu/([a-z0-9]{32})", url.path)
            if url.path == "/pks/lookup" and q.get("op") == ["get"] and q.get("search"):
                name = q["search"][0].lower()
                if "/" in name or name.startswith("."):
                    self._send(400, b"bad search\n")
                    return
                self._file(os.path.join(folder, "hkp", name), "application/pgp-keys")
            elif m:
                self._file(os.path.join(folder, "wkd", m.group(1), m.group(2)),
                           "application/octet-stream")
            else:
                self._send(404, b"Not here\n")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), handler_for(a.dir))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    serve_until_signal(a.port, server.shutdown)


if __name__ == "__main__":
    main()
