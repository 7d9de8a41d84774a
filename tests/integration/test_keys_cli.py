"""`sluice keys create|list|revoke` end to end on a temp keys file, as an operator runs them: the
key is printed once and only its SHA-256 reaches the file (mode 0600, replaced atomically), list
shows states and never secrets, revoke marks a key, bad arguments exit 2 and a corrupt file exits
1 naming the file and the problem, leaving it untouched."""
import datetime
import hashlib
import json
import os
import re
import stat
import subprocess

import pytest

from conftest import SLUICE_BIN

KEY_RE = re.compile(r"slk_[A-Za-z0-9_-]{43}")


def keys(*args, cwd=None):
    return subprocess.run([SLUICE_BIN, "keys", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def create(path, *args):
    r = keys("create", "--file", str(path), *args)
    assert r.returncode == 0, r.stderr
    found = KEY_RE.findall(r.stdout)
    assert len(found) == 1, r.stdout
    return found[0], r


def load(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


def entry(path, key_id):
    return next(k for k in load(path)["keys"] if k["id"] == key_id)


def rfc3339(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def list_rows(path):
    r = keys("list", "--file", str(path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "TENANT", "TIER", "SCOPES", "CREATED", "EXPIRES", "STATE"]
    return {row.split()[0]: row.split() for row in lines[1:]}, r.stdout


def test_help_and_registration():
    r = keys("--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: sluice keys create")
    top = subprocess.run([SLUICE_BIN, "--help"], capture_output=True, text=True, timeout=30)
    assert re.search(r"^\s+keys\s+", top.stdout, re.M)


def test_create_prints_key_once_and_stores_only_its_digest(tmp_path):
    path = tmp_path / "keys.json"
    key, r = create(path, "--tenant", "acme", "--tier", "enterprise", "--scopes", "predict,admin")
    assert "only time it is shown" in r.stdout and "cannot be recovered" in r.stdout
    digest = hashlib.sha256(key.encode()).hexdigest()
    key_id = "key_" + digest[:8]
    assert key_id in r.stdout

    raw = path.read_bytes()
    assert key.encode() not in raw and key[4:].encode() not in raw and b"slk_" not in raw
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["keys.json"]  # no temp file left behind
    doc = load(path)
    assert doc["version"] == 1
    e = entry(path, key_id)
    assert e["sha256"] == digest
    assert (e["tenant"], e["tier"], e["scopes"]) == ("acme", "enterprise", ["predict", "admin"])
    assert e["expires_at"] is None and e["revoked_at"] is None
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((rfc3339(e["created_at"]) - now).total_seconds()) < 300

    # The key is never shown again: not by list, not by a second create.
    rows, out = list_rows(path)
    assert key not in out and digest not in out and digest[8:24] not in out
    assert rows[key_id][1:4] == ["acme", "enterprise", "predict,admin"]
    assert rows[key_id][-1] == "active"


def test_two_keys_per_tenant_and_revoke(tmp_path):
    path = tmp_path / "keys.json"
    k1, _ = create(path, "--tenant", "acme")
    k2, _ = create(path, "--tenant", "acme")
    assert k1 != k2
    id1 = "key_" + hashlib.sha256(k1.encode()).hexdigest()[:8]
    id2 = "key_" + hashlib.sha256(k2.encode()).hexdigest()[:8]
    rows, _ = list_rows(path)
    assert rows[id1][1:4] == ["acme", "standard", "predict"]  # the defaults
    r = keys("--file", str(path), "list")  # options may come first
    assert r.returncode == 0 and id1 in r.stdout and id2 in r.stdout
    assert rows[id1][-1] == rows[id2][-1] == "active"

    r = keys("revoke", id1, "--file", str(path))
    assert r.returncode == 0, r.stderr
    assert "Revoked key " + id1 in r.stdout
    rows, _ = list_rows(path)
    assert rows[id1][-1] == "revoked" and rows[id2][-1] == "active"
    revoked_at = entry(path, id1)["revoked_at"]
    assert revoked_at is not None and entry(path, id2)["revoked_at"] is None

    # Revoking twice keeps the first time; an unknown id is an error.
    r = keys("revoke", "--file", str(path), id1)
    assert r.returncode == 0 and "already revoked" in r.stdout
    assert entry(path, id1)["revoked_at"] == revoked_at
    before = path.read_bytes()
    r = keys("revoke", "key_00000000", "--file", str(path))
    assert r.returncode == 1 and "no key with id 'key_00000000'" in r.stderr
    assert path.read_bytes() == before


def test_expiry(tmp_path):
    path = tmp_path / "keys.json"
    now = datetime.datetime.now(datetime.timezone.utc)
    k1, _ = create(path, "--tenant", "t1", "--expires", "2h")
    k2, _ = create(path, "--tenant", "t2", "--expires=2031-05-06T07:08:09+02:00")
    id1 = "key_" + hashlib.sha256(k1.encode()).hexdigest()[:8]
    id2 = "key_" + hashlib.sha256(k2.encode()).hexdigest()[:8]
    exp1 = rfc3339(entry(path, id1)["expires_at"])
    assert abs((exp1 - now).total_seconds() - 7200) < 300
    assert entry(path, id2)["expires_at"] == "2031-05-06T05:08:09Z"
    rows, _ = list_rows(path)
    assert rows[id2][5] == "2031-05-06T05:08:09Z" and rows[id2][-1] == "active"

    # A key whose expiry has passed is listed as expired (edit the file as an operator might).
    doc = load(path)
    for k in doc["keys"]:
        if k["id"] == id1:
            k["expires_at"] = "2020-01-01T00:00:00Z"
    path.write_text(json.dumps(doc))
    rows, _ = list_rows(path)
    assert rows[id1][-1] == "expired" and rows[id2][-1] == "active"


def test_default_file_in_working_directory(tmp_path):
    r = keys("create", "--tenant", "acme", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "./sluice-keys.json" in r.stdout
    assert len(load(tmp_path / "sluice-keys.json")["keys"]) == 1
    r = keys("list", cwd=tmp_path)
    assert r.returncode == 0 and "acme" in r.stdout


@pytest.mark.parametrize("args,message", [
    ([], "missing subcommand"),
    (["rotate"], "unknown subcommand 'rotate'"),
    (["create"], "create needs --tenant"),
    (["create", "--tenant"], "--tenant needs a value"),
    (["create", "--tenant", ""], "needs a non-empty value"),
    (["create", "--tenant", "a b"], "a tenant is"),
    (["create", "--tenant", "a", "--tenant", "b"], "given twice"),
    (["create", "--tenant", "a", "--tier", "Gold"], "a tier is"),
    (["create", "--tenant", "a", "--scopes", "predict,root"], "--scopes 'predict,root'"),
    (["create", "--tenant", "a", "--scopes", ""], "needs a non-empty value"),
    (["create", "--tenant", "a", "--expires", "30x"], "--expires '30x' must be a duration"),
    (["create", "--tenant", "a", "--expires", "0d"], "must be more than 0"),
    (["create", "--tenant", "a", "--expires", "99999d"], "at most 36500d"),
    (["create", "--tenant", "a", "--expires", "2001-01-01T00:00:00Z"], "is in the past"),
    (["create", "--tenant", "a", "--expires", "2030-02-30T00:00:00Z"], "RFC 3339"),
    (["create", "--tenant", "a", "--colour", "red"], "unknown option '--colour'"),
    (["create", "--tenant", "a", "extra"], "unexpected argument 'extra'"),
    (["list", "--tenant", "a"], "apply to create only"),
    (["list", "extra"], "unexpected argument"),
    (["revoke"], "revoke needs a key id"),
    (["revoke", "a", "b"], "unexpected argument 'b'"),
])
def test_bad_arguments_exit_2(tmp_path, args, message):
    path = tmp_path / "keys.json"
    create(path, "--tenant", "acme")
    before = path.read_bytes()
    r = keys(*args, "--file", str(path))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Usage: sluice keys" in r.stderr
    assert not KEY_RE.search(r.stdout + r.stderr)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content,problem", [
    ("not json", "not valid JSON"),
    ('{"version": 1, "keys": [{"id": "k"}]}', "keys[0]: missing field 'sha256'"),
    ('{"version": 1, "keys": [{"id": "k", "sha256": "xyz", "tenant": "a", "tier": "t", '
     '"scopes": ["predict"], "created_at": "2025-01-01T00:00:00Z"}]}',
     "keys[0].sha256 must be 64 hex digits"),
    ('{"version": 7, "keys": []}', "'version' must be 1"),
])
@pytest.mark.parametrize("command", [["list"], ["create", "--tenant", "acme"], ["revoke", "key_1"]])
def test_corrupt_file_exits_1(tmp_path, content, problem, command):
    path = tmp_path / "keys.json"
    path.write_text(content)
    r = keys(*command, "--file", str(path))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert str(path) in r.stderr and problem in r.stderr
    assert not KEY_RE.search(r.stdout)  # no key was handed out that the file does not hold
    assert path.read_text() == content


def test_missing_file(tmp_path):
    path = tmp_path / "none.json"
    for command in (["list"], ["revoke", "key_1"]):
        r = keys(*command, "--file", str(path))
        assert r.returncode == 1 and str(path) in r.stderr and "does not exist" in r.stderr
    assert not path.exists()
    r = keys("create", "--tenant", "acme", "--file", str(tmp_path / "no-such-dir" / "k.json"))
    assert r.returncode == 1 and "no-such-dir" in r.stderr
    assert not KEY_RE.search(r.stdout)
