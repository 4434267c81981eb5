"""What the HTTP shim refuses, each with a precise status and MISP's JSON error shape, and
without changing anything:

- CLI-only settings (MISP's cli_only: Security.rest_client_enable_arbitrary_urls,
  MISP.attachments_dir, …) cannot be changed over HTTP, on every transport the shim uses
  (the broker's proxy intake, the commands endpoint, Kafka): 405, MISP's "This setting can
  only be edited via the CLI."; adminctl over the bus still changes them.
- A URL whose decoded path or query holds a NUL or another control byte: 400.
- A method a route does not take: 405 with an Allow header naming those it does.
- Too many query parameters, too many /events topics, an over-long authkey: 400 stating
  the real limit (the connection used to close with no answer, or name a wrong size)."""

import socket
import subprocess

import msgpack

from test_http import curl

ARBITRARY = "Security.rest_client_enable_arbitrary_urls"
ATTACHMENTS = "MISP.attachments_dir"
MISP_CLI_ONLY = "This setting can only be edited via the CLI."


def stored(stack, name):
    """The settings row of name (None when only the default applies)."""
    rows = stack.rows("SELECT value FROM settings WHERE name = %s", name)
    return rows[0]["value"] if rows else None


def setting_edits(stack):
    return stack.count("logs", "action = 'serverSettingsEdit'")


def check_cli_only_refused(stack, base, folder):
    before = setting_edits(stack)
    for name, value in ((ARBITRARY, True), (ATTACHMENTS, str(folder)),
                        (ARBITRARY, "1"), (ATTACHMENTS, str(folder))):
        st, b = curl(base, "POST", f"/servers/serverSettingsEdit/{name}", stack.key,
                     {"value": value})
        assert st == 405, (name, st, b)
        assert b["name"] == MISP_CLI_ONLY, b
        assert b["code"] == "forbidden" and b["field"] == "name", b
        assert name in b["message"] and "command line" in b["message"], b
        assert b["url"] == f"/servers/serverSettingsEdit/{name}", b
    # forced, wrapped as MISP's forms send it: refused the same
    st, b = curl(base, "POST", f"/servers/serverSettingsEdit/{ARBITRARY}", stack.key,
                 {"Server": {"value": True, "force": True}})
    assert st == 405 and b["name"] == MISP_CLI_ONLY, b
    assert stored(stack, ARBITRARY) is None and stored(stack, ATTACHMENTS) is None
    assert setting_edits(stack) == before
    # a setting that is not CLI-only is still changed over HTTP
    st, b = curl(base, "POST", "/servers/serverSettingsEdit/MISP.log_auth", stack.key,
                 {"value": True})
    assert st == 200 and b["saved"] is True, b
    assert stored(stack, "MISP.log_auth") == "true"


def test_cli_only_settings_refused_over_http_through_the_proxy_intake(stack, tmp_path):
    h = stack.start_http()
    assert "proxy.sock" in h.log.read_text()  # the commands went to the proxy intake
    check_cli_only_refused(stack, h.base, tmp_path)


def test_cli_only_settings_refused_over_http_on_the_commands_endpoint(stack, tmp_path):
    h = stack.start_http(proxy_endpoint="off")
    assert f"bus {stack.url}" in h.log.read_text()  # the commands endpoint, no proxy
    check_cli_only_refused(stack, h.base, tmp_path)


def test_cli_only_settings_refused_over_http_on_kafka(kstack, tmp_path):
    h = kstack.start_http()
    check_cli_only_refused(kstack, h.base, tmp_path)


def test_cli_only_settings_still_set_over_the_bus(stack, tmp_path):
    rc, out, err = stack.adminctl("setting", "set", ARBITRARY, "true")
    assert rc == 0, (out, err)
    rc, out, err = stack.adminctl("setting", "set", ATTACHMENTS, str(tmp_path))
    assert rc == 0, (out, err)
    assert stored(stack, ARBITRARY) == "true" and stored(stack, ATTACHMENTS) == str(tmp_path)
    # a bus client that says via = "http" only limits itself: set and reset refused
    for type, args in (("setting.set", {"name": ARBITRARY, "value": False}),
                       ("setting.reset", {"name": ARBITRARY}),
                       ("setting.reset", {"name": ATTACHMENTS})):
        r = stack.send(dict(stack.command(type, args), via="http"))
        assert r["ok"] is False, r
        assert r["error"]["code"] == "forbidden" and r["error"]["field"] == "name", r
    assert stored(stack, ARBITRARY) == "true" and stored(stack, ATTACHMENTS) == str(tmp_path)
    # any other via is malformed; without it the reset works
    r = stack.send(dict(stack.command("setting.reset", {"name": ARBITRARY}), via="cli"))
    assert r["error"]["code"] == "invalid" and r["error"]["field"] == "via", r
    rc, out, err = stack.adminctl("setting", "reset", ARBITRARY)
    assert rc == 0, (out, err)
    assert stored(stack, ARBITRARY) is None
    # over HTTP the same key reads them still
    h = stack.start_http()
    st, b = curl(h.base, "GET", f"/servers/getSetting/{ATTACHMENTS}", stack.key)
    assert st == 200 and b["value"] == str(tmp_path) and b["cli_only"] is True, b
