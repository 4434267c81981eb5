"""auth.whoami: who the key belongs to, which engine answered, its version."""

import re
from pathlib import Path

from helpers import admin, assert_error, ctl_json

ROOT = Path(__file__).resolve().parents[2]


def project_version():
    text = (ROOT / "CMakeLists.txt").read_text()
    return re.search(r"project\(adminbus\s+VERSION\s+([0-9.]+)", text).group(1)


def test_whoami(stack):
    me = admin(stack)
    before = stack.counts()
    res = stack.ok("auth.whoami")
    assert res["user"] == {"id": me["id"], "email": me["email"]}
    assert res["org"] == {"id": me["org_id"], "name": me["org_name"], "uuid": me["org_uuid"]}
    role = stack.rows("SELECT r.id, r.name, r.perm_site_admin FROM roles r "
                      "JOIN users u ON u.role_id = r.id WHERE u.id = %s", me["id"])[0]
    assert res["role"] == {"id": role["id"], "name": role["name"], "site_admin": True}
    assert role["perm_site_admin"] == 1
    assert res["engine"]["version"] == project_version()
    assert isinstance(res["engine"]["name"], str) and res["engine"]["name"]
    schema = stack.rows("SELECT MAX(version) AS v FROM schema_versions")[0]["v"]
    assert res["schema_version"] == schema
    # a read: nothing recorded
    assert stack.counts() == before


def test_whoami_with_adminctl(stack):
    me = admin(stack)
    res = ctl_json(stack, "whoami")
    assert res["user"]["email"] == me["email"] and res["org"]["name"] == me["org_name"]
    rc, out, err = stack.adminctl("whoami")
    assert rc == 0, (rc, out, err)
    assert me["email"] in out and project_version() in out, out


def test_whoami_refuses_a_wrong_key(stack):
    assert_error(stack.cmd("auth.whoami", auth="z" * 40), "unauthenticated")
    body = stack.command("auth.whoami")
    del body["auth"]
    assert_error(stack.send(body), "unauthenticated")
