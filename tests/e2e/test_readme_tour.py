"""The README's five-minute tour, run as it stands against a stack from ops/run --detach.

Each line of the tour's code block runs in order through bash, adminctl finding the stack
through $ADMINBUS_HOME/env as a reader's would; every command must succeed (diagnostics may
say critical: exit 4, as the tour says). Where the tour asks the reader for something an
earlier command printed — a password, a session, a job or worker id — this test gives
what was printed; it also provides what a reader brings: bob's public key (bob.asc) and an
SMTP server (the loopback sink in place of smtp.example.org, plain SMTP)."""

import json
import re
import shutil
import subprocess

from conftest import BIN, ROOT, clean_env, short_dir
from test_mail import SmtpSink, gpg
from test_ops_run import detached_stack

README = ROOT / "README.md"


def tour_lines():
    """The commands of the tour's block, comments cut off."""
    text = README.read_text()
    block = re.search(r"^## A five-minute tour\n.*?^```sh\n(.*?)^```", text, re.S | re.M)
    assert block, "README.md has no tour block"
    lines = [re.split(r"\s{2,}#", line)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


class Reader:
    """Runs tour lines the way a reader would, filling in what the tour says to take from
    earlier output."""

    def __init__(self, env, workdir, sink):
        self.env, self.workdir, self.sink = env, workdir, sink
        self.seen = {}  # what earlier commands printed: password, session, job ids
        self.log = []

    def ctl_json(self, *args):
        p = subprocess.run([str(BIN / "adminctl"), "--json", *args], env=self.env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def fill_in(self, line):
        """The line with the reader's part done; its standard input."""
        line = line.replace("build/bin/", f"{BIN}/")
        stdin = ""
        if " auth login " in line:
            line += " --password-stdin"
            stdin = self.seen["password"] + "\n"
        line = line.replace("<token>", self.seen.get("session", "<token>"))
        if re.search(r" workers (pause|kill) ID$", line):
            if "worker" not in self.seen:
                self.seen["worker"] = self.ctl_json("worker", "list")["items"][0]["id"]
            line = line[:-2] + self.seen["worker"]
        if re.search(r" job track \d+$", line):
            line = re.sub(r"\d+$", str(self.seen["sleep_job"]), line)
        if re.search(r" mail status \d+$", line):
            line = re.sub(r"\d+$", str(self.seen["contact_job"]), line)
        line = line.replace("smtp.example.org", "127.0.0.1")
        return line, stdin

    def remember(self, line, out):
        """What later lines need from this one's output."""
        first_id = re.search(r"^id:\s+(\d+)$", out, re.M)
        if " user add --email ana@" in line:
            self.seen["password"] = re.search(r"^password:\s+(\S+)$", out, re.M).group(1)
        elif " auth login " in line:
            self.seen["session"] = re.search(r"^session:\s+(\S+)$", out, re.M).group(1)
        elif " job enqueue sleep " in line:
            self.seen["sleep_job"] = int(first_id.group(1))
        elif " contact --all " in line:
            self.seen["contact_job"] = int(first_id.group(1))

    def run(self, line):
        cmd, stdin = self.fill_in(line)
        p = subprocess.run(["bash", "-c", cmd], cwd=self.workdir, env=self.env, input=stdin,
                           capture_output=True, text=True, timeout=120)
        self.log.append(f"$ {line}\n-> {p.returncode}\n{p.stdout[-1500:]}{p.stderr[-1500:]}")
        ok = (0, 4) if line.endswith("adminctl diagnostics") else (0,)
        assert p.returncode in ok, "the tour stopped here:\n\n" + "\n".join(self.log[-4:])
        self.remember(line, p.stdout)
        if "setting set Email.host" in line:  # the reader's own server: port and TLS too
            for name, value in (("Email.port", self.sink.port), ("Email.tls", "none")):
                self.ctl_json("setting", "set", name, str(value))
        return p


def test_the_readme_tour_reads_straight_through(mariadb, tmp_path):
    lines = tour_lines()
    assert len(lines) > 30 and lines[0].endswith("adminctl whoami"), lines
    work = tmp_path / "work"
    work.mkdir()
    keys = short_dir()  # bob's GnuPG home: gpg-agent's socket must fit in 107 bytes
    try:
        gpg(str(keys), "--passphrase", "", "--quick-gen-key", "Bob <bob@circl.lu>", "default",
            "default", "never")
        (work / "bob.asc").write_bytes(gpg(str(keys), "--armor", "--export",
                                           "bob@circl.lu").stdout)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(keys), "--kill", "all"], env=clean_env(),
                       check=False, capture_output=True)
        shutil.rmtree(keys, ignore_errors=True)
    home = tmp_path / "home"
    with SmtpSink(tmp_path / "sink") as sink, \
            detached_stack(mariadb, home, workers="default:1,email:1") as (env, seen):
        reader = Reader(clean_env(ADMINBUS_HOME=home), work, sink)
        old_key = (home / "env").read_text()
        for line in lines:
            reader.run(line)
        # what the tour said happened did happen
        assert "ADMINBUS_AUTHKEY=" in (home / "env").read_text()
        assert (home / "env").read_text() != old_key  # the break-glass reset put its key there
        assert sink.messages("ops@circl.lu"), "mail test sent nothing"
        assert json.loads((work / "report.json").read_text())
