#!/usr/bin/python3
"""An SMTP sink on loopback for the e-mail tests (Debian's python3-aiosmtpd).

    smtp_sink.py --port PORT --dir DIR [--cert PEM --key PEM [--implicit-tls]]

With --auth USER:PASSWORD it offers AUTH PLAIN and LOGIN (without TLS: loopback only) and
refuses mail before a successful login; attempts go to DIR/auth.log. With a certificate it
offers STARTTLS (or, with --implicit-tls, speaks TLS from the first
byte, as on port 465).

Every accepted message is written to DIR as NNNNNN.eml (the bytes exactly as received, CRLF
line ends) with NNNNNN.json beside it ({mail_from, rcpt_tos}). Replies can be scripted
per recipient in DIR/plan.json, read at every command:

    {"rcpt": {"bob@example.org": "550 5.1.1 No such user"},
     "data": {"ana@example.org": ["451 4.7.1 Greylisted, try later"]}}

"rcpt" refuses that recipient at RCPT TO every time; "data" answers the DATA of a message
to that recipient with the next reply of the list (a reply is used up; once the list is
empty the message is accepted). "hold": {"carol@example.org": 5} stores the next message
to that recipient, then waits 5 seconds before its 250 (used up too): a client killed in
those seconds has had its message taken without hearing so. "delay_rcpt":
{"dave@example.org": [4]} answers the next RCPT TO for that recipient after 4 seconds (a
slow server; used up). The sidecar JSON also says whether the session was under TLS. Prints "ready PORT" when it listens; stops on SIGTERM.
"""

import argparse
import asyncio
import json
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from loopserver import serve_until_signal


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.lock = threading.Lock()
        self.n = 0

    def _plan(self):
        try:
            with open(os.path.join(self.folder, "plan.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def _save_plan(self, plan):
        tmp = os.path.join(self.folder, "plan.json.tmp")
        with open(tmp, "w") as f:
            json.dump(plan, f)
        os.replace(tmp, os.path.join(self.folder, "plan.json"))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        delay = 0
        with self.lock:
            plan = self._plan()
            delays = plan.get("delay_rcpt", {}).get(address.lower())
            if delays:
                delay = delays.pop(0)
                self._save_plan(plan)
        if delay:
            await asyncio.sleep(delay)
        refusal = self._plan().get("rcpt", {}).get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    @staticmethod
    def _tls(server, session):
        """After STARTTLS aiosmtpd sets session.ssl; implicit TLS is the transport's."""
        return bool(session.ssl) or server.transport.get_extra_info("ssl_object") is not None

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            plan = self._plan()
            for rcpt in envelope.rcpt_tos:
                replies = plan.get("data", {}).get(rcpt.lower())
                if replies:
                    reply = replies.pop(0)
                    self._save_plan(plan)
                    return reply
            self.n += 1
            base = os.path.join(self.folder, "%06d" % self.n)
            with open(base + ".eml.tmp", "wb") as f:
                f.write(envelope.original_content)
            with open(base + ".json", "w") as f:
                json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                           "tls": self._tls(server, session)}, f)
            os.replace(base + ".eml.tmp", base + ".eml")
            hold = 0
            for rcpt in envelope.rcpt_tos:
                hold = max(hold, plan.get("hold", {}).pop(rcpt.lower(), 0))
            if hold:
                self._save_plan(plan)
        if hold:
            await asyncio.sleep(hold)
        return "250 2.0.0 Message accepted for delivery"


class Authenticator:
    """Accepts one login; every attempt (mechanism, login, whether it passed) is appended to
    DIR/auth.log, never the password."""

    def __init__(self, folder, login, password):
        self.log = os.path.join(folder, "auth.log")
        self.login, self.password = login.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.login
              and auth_data.password == self.password)
        with open(self.log, "a") as f:
            login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
            f.write(f"{mechanism} {login} {'ok' if ok else 'refused'}\n")
        return AuthResult(success=ok, handled=False)  # aiosmtpd then answers 235 or 535


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--auth", help="USER:PASSWORD: offer AUTH PLAIN/LOGIN and require it")
    a = ap.parse_args()
    tls = {}
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        tls = {"ssl_context": ctx} if a.implicit_tls else {"tls_context": ctx}
    auth = {}
    if a.auth:
        auth = {"authenticator": Authenticator(a.dir, *a.auth.split(":", 1)),
                "auth_required": True, "auth_require_tls": False}
    controller = Controller(Sink(a.dir), hostname="127.0.0.1", port=a.port,
                            decode_data=False, enable_SMTPUTF8=True, **tls, **auth)
    controller.start()
    serve_until_signal(a.port, controller.stop)


if __name__ == "__main__":
    main()
