#!/usr/bin/env python3
"""The key vault (design.md "Secrets", README "Secrets"), end to end through the stack.

(a) canary keys added through the API appear nowhere in a mariadb-dump of the database nor in
    the stack's logs: not raw, not hex, not base64 or base64url at any alignment;
(b) a ciphertext copied to another row or another workspace, a tampered tag, a truncated or
    otherwise altered ciphertext, a data key copied between workspaces: using the key (POST
    .../test) fails safely (500 naming the vault) and no plaintext reaches the stub provider;
(e) deleting a workspace deletes its data keys and provider keys;
(c) on a private stack: a wrong, missing or group-readable master key stops keyrelay-fcgi and
    keyrelay-runner at start with a message naming the master key; they never serve;
(d) on the same private stack: rekey to a second master key, interrupted by SIGKILL part-way,
    resumed, then the old key removed from the configuration: every key stays usable.

Runs against the shared stack ($KEYRELAY_TEST_STACK) and one private stack of its own.
"""
import base64
import concurrent.futures
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (CheckError, SetupError, admin_client, create_workspace,  # noqa: E402
                      eq, expect, expect_error, run, true)

PROVIDER_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "ZAI_API_KEY",
                "MOONSHOT_API_KEY")
# Headers through which a provider key reaches the provider (providers.md).
KEY_HEADERS = ("x-api-key", "authorization", "x-goog-api-key")
REKEY_WORKSPACES = 200


# ---------------------------------------------------------------------------------------------
# helpers

def rnd(n=24):
    """Random letters and digits (no '-' or '_', so base64 forms stay distinctive)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def kpath(ws, kid=None, action=None):
    p = "/api/workspaces/%s/keys" % ws
    if kid:
        p += "/" + kid
    if action:
        p += "/" + action
    return p


def add_keys(client, ws, provider, keys, names=None, validate=None, what=None):
    body = {"provider": provider, "keys": keys}
    if names is not None:
        body["names"] = names
    if validate is not None:
        body["validate"] = validate
    r = client.post(kpath(ws), json=body)
    if r.status != 201:
        raise SetupError("%sadd %s keys to %s: expected 201, got %s"
                         % (what + ": " if what else "", provider, ws, r.describe()))
    return r.json["keys"]


def get_key(client, ws, kid):
    r = client.get(kpath(ws))
    expect(200, r, "GET keys of %s" % ws)
    for k in r.json["keys"]:
        if k.get("id") == kid:
            return k
    raise CheckError("key %s not listed in %s" % (kid, r.describe()))


def key_test(client, ws, kid):
    return client.post(kpath(ws, kid, "test"), json={})


def expect_valid_test(client, ws, kid, what="test"):
    r = key_test(client, ws, kid)
    expect(200, r, what)
    if not (isinstance(r.json, dict) and r.json.get("valid") is True
            and r.json.get("status") == "valid"):
        raise CheckError("%s: expected {valid:true,status:valid}, got %s" % (what, r.describe()))
    return r


def expect_vault_refusal(r, what):
    """A use of a key whose ciphertext does not verify: 500 internal naming the vault."""
    err = expect_error(r, 500, "internal", what=what)
    true("vault" in err.get("message", "").lower(),
         "%s: the message does not name the vault: %r" % (what, err.get("message")))


def stub_key_count(stub, secret):
    """How many requests the stub saw that carried secret in a key header."""
    n = 0
    for req in stub.requests():
        h = {k.lower(): v for k, v in (req.get("headers") or {}).items()}
        for name in KEY_HEADERS:
            v = h.get(name)
            if isinstance(v, str) and secret in v:
                n += 1
                break
    return n


def stub_requests_with(stub, secrets_):
    """Requests whose headers, path or body carry one of secrets_ (anywhere)."""
    hits = []
    for req in stub.requests():
        blob = repr(req.get("headers")) + repr(req.get("path")) + repr(req.get("body"))
        for sec in secrets_:
            if sec in blob:
                hits.append((sec[:10] + "...", req.get("provider"), req.get("path")))
    return hits


def ws_id(s, slug):
    rows = s.sql("SELECT id FROM workspaces WHERE slug = ?", slug)
    if len(rows) != 1:
        raise SetupError("workspace %s: %d rows in workspaces" % (slug, len(rows)))
    return rows[0][0]


def secret_hex(s, kid):
    rows = s.sql("SELECT HEX(secret) FROM provider_keys WHERE id = ?", kid)
    if len(rows) != 1 or rows[0][0] is None:
        raise SetupError("provider_keys row %s: %r" % (kid, rows))
    return rows[0][0]


def set_secret(s, kid, raw):
    s.sql("UPDATE provider_keys SET secret = ? WHERE id = ?", bytes(raw), kid)
    got = secret_hex(s, kid)
    if got.upper() != bytes(raw).hex().upper():
        raise SetupError("could not store the altered ciphertext of %s" % kid)


def encoded_forms(secret):
    """The forms a secret could take in a dump or a log: raw, hex (both cases), and base64 /
    base64url at each of the three alignments (the characters of the 3-byte groups that
    lie wholly inside the secret, for a secret starting at offset 0, 1 or 2 of a group)."""
    b = secret.encode("utf-8")
    forms = {"raw": b, "hex": b.hex().encode(), "HEX": b.hex().upper().encode()}
    for skip in range(3):
        sub = b[skip:]
        chunk = sub[:len(sub) // 3 * 3]
        if len(chunk) >= 12:
            forms["base64@%d" % skip] = base64.b64encode(chunk)
            forms["base64url@%d" % skip] = base64.urlsafe_b64encode(chunk)
    return forms


def middle_windows(secret, hint_head=7, hint_tail=4, width=12):
    """12-character windows of the part of the secret the masked hint does not show."""
    mid = secret[hint_head:len(secret) - hint_tail]
    return [mid[i:i + width] for i in range(0, max(0, len(mid) - width + 1))]


def find_leaks(blob, canaries):
    """[(canary label, form)] for every form of every canary found in blob (bytes)."""
    found = []
    for label, sec in canaries.items():
        for form, needle in encoded_forms(sec).items():
            if needle in blob:
                found.append((label, form))
        for w in middle_windows(sec):
            if w.encode() in blob:
                found.append((label, "12-char piece %r..." % w[:4]))
                break
    return found


def mariadb_dump(s, hex_blob=False):
    argv = ["mariadb-dump", "--no-defaults", "--protocol=socket",
            "--socket=" + s.mariadb_socket, "--user=" + s.db_user,
            "--single-transaction", "--skip-lock-tables", "--skip-extended-insert"]
    if hex_blob:
        argv.append("--hex-blob")
    argv.append(s.db_name)
    env = dict(os.environ)
    env["MYSQL_PWD"] = s.db_password
    r = subprocess.run(argv, capture_output=True, env=env, timeout=120)
    if r.returncode != 0:
        raise CheckError("mariadb-dump failed (%d): %s" % (r.returncode,
                                                           r.stderr.decode("utf-8", "replace")))
    return r.stdout


def unix_listening(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as so:
        so.settimeout(1)
        try:
            so.connect(str(path))
        except OSError:
            return False
    return True


def program_env(s):
    """The environment the stack gives its programs (stub URLs, KEYRELAY_CONFIG...)."""
    env = s._env() if hasattr(s, "_env") else dict(os.environ)
    for k in PROVIDER_ENV:
        env.pop(k, None)
    return env


def run_program(s, prog, timeout=60):
    """Runs keyrelay-fcgi or keyrelay-runner of stack s in the foreground until it exits
    (or timeout: it is then killed and answered as still running). (returncode or None,
    output, served): served is True when its API socket accepted a connection meanwhile."""
    argv = [str(s.bin_dir / prog), "--config", s.config]
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=program_env(s), cwd=str(s.dir), start_new_session=True)
        served = False
        deadline = time.monotonic() + timeout
        rc = None
        while time.monotonic() < deadline:
            rc = p.poll()
            if rc is not None:
                break
            if prog == "keyrelay-fcgi" and unix_listening(s.p("api.sock")):
                served = True
            time.sleep(0.1)
        if rc is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return rc, text, served


def write_key_file(path, data, mode=0o400):
    try:
        os.chmod(path, 0o600)
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def random_raw_key():
    """32 random bytes that are not all text (the vault refuses 32 characters of text)."""
    while True:
        b = os.urandom(32)
        if any(c < 0x20 or c > 0x7e for c in b):
            return b


def set_config(s, **keys):
    """Rewrites the private stack's keyrelay.conf with extra or changed keys."""
    extra = s.state.setdefault("config_extra", {})
    for k, v in keys.items():
        extra[k.replace("__", ".")] = v
    s._save()
    s._write_config()


def restart_programs(s):
    for name in ("runner", "fcgi"):
        problems = s.stop_service(name)
        if problems:
            raise CheckError("stopping %s: %s" % (name, problems))
    for name in ("fcgi", "runner"):
        s.start_service(name)
    s.wait_healthy()


def master_rows(s):
    return dict(s.sql("SELECT master_key_id, COUNT(*) FROM workspace_keys GROUP BY master_key_id"))


# ---------------------------------------------------------------------------------------------
# (a) canaries

def part_canaries(t, s, admin):
    stub = s.stub
    with t.setup("canaries: workspace and canary keys added through the API"):
        ws = create_workspace(admin)["slug"]
        canaries = {
            "anthropic-1": "sk-ant-api03-" + rnd(40) + "AA",
            "anthropic-2": "sk-ant-api03-" + rnd(40) + "BB",
            "openai": "sk-proj-" + rnd(48),
            "google": "AIzaSy" + rnd(33),
            "zai": rnd(32).lower() + "." + rnd(16),
            "moonshot": "sk-" + rnd(48),
            "rotated-away": "sk-ant-api03-" + rnd(40) + "CC",
            "rotated-in": "sk-ant-api03-" + rnd(40) + "DD",
            "validated": "sk-proj-" + rnd(48),
            "echoed": "sk-proj-" + rnd(48),
            "echoed-on-validate": "sk-proj-" + rnd(48),
        }
        for k in ("anthropic-1", "anthropic-2", "openai", "google", "zai", "moonshot",
                  "rotated-away", "rotated-in", "validated"):
            stub.set_key(canaries[k], "ok")
        stub.set_key(canaries["echoed"], "echo_key")
        stub.set_key(canaries["echoed-on-validate"], "echo_key")
        ids = {}
        got = add_keys(admin, ws, "anthropic",
                       "%s, %s" % (canaries["anthropic-1"], canaries["anthropic-2"]),
                       names="Canary one,Canary two")
        ids["anthropic-1"], ids["anthropic-2"] = got[0]["id"], got[1]["id"]
        for label, prov in (("openai", "openai"), ("google", "google"), ("zai", "zai"),
                            ("moonshot", "moonshot"), ("rotated-away", "anthropic"),
                            ("echoed", "openai")):
            ids[label] = add_keys(admin, ws, prov, [canaries[label]])[0]["id"]
        ids["validated"] = add_keys(admin, ws, "openai", [canaries["validated"]],
                                    validate=True)[0]["id"]
        answers = []
        masked = []

    with t("canaries: GET keys shows masked keys only"):
        r = admin.get(kpath(ws))
        expect(200, r)
        answers.append(r.raw)
        eq(len(r.json["keys"]), 9, "number of keys")
        masked.extend(k.get("maskedKey") for k in r.json["keys"])
        for k in r.json["keys"]:
            true(isinstance(k.get("maskedKey"), str) and "\u2026" in k["maskedKey"],
                 "maskedKey %r" % k.get("maskedKey"))
        eq(find_leaks(r.raw, canaries), [], "canary forms in GET keys")

    with t("canaries: rotate replaces a key (200, status untested)"):
        r = admin.post(kpath(ws, ids["rotated-away"], "rotate"),
                       json={"key": canaries["rotated-in"]})
        expect(200, r)
        answers.append(r.raw)
        eq(r.json.get("status"), "untested", "status after rotation")

    with t("canaries: every key tests valid against the stub (the vault decrypts them)"):
        for label in ("anthropic-1", "anthropic-2", "openai", "google", "zai", "moonshot",
                      "rotated-away", "validated"):
            r = expect_valid_test(admin, ws, ids[label], "test %s" % label)
            answers.append(r.raw)
        true(stub_key_count(stub, canaries["rotated-in"]) >= 1,
             "the rotated key's new secret did not reach the stub")

    with t("canaries: a key whose provider echoes it back is invalid, and the answer "
           "does not carry it"):
        r = key_test(admin, ws, ids["echoed"])
        expect(200, r)
        answers.append(r.raw)
        eq(r.json.get("valid"), False, "valid")
        eq(r.json.get("status"), "invalid", "status")
        eq(find_leaks(r.raw, canaries), [], "canary forms in the test answer")
        k = get_key(admin, ws, ids["echoed"])
        true(isinstance(k.get("lastError"), str) and k["lastError"],
             "lastError not set: %r" % k.get("lastError"))
        eq(find_leaks(k["lastError"].encode(), canaries), [], "canary forms in lastError")

    with t("canaries: validate-before-save of a key the provider echoes: 422, nothing "
           "saved, the answer does not carry it"):
        r = admin.post(kpath(ws), json={"provider": "openai", "validate": True,
                                        "keys": [canaries["echoed-on-validate"]]})
        answers.append(r.raw)
        expect_error(r, 422, "validation_failed", field="keys[0]")
        eq(find_leaks(r.raw, canaries), [], "canary forms in the 422 answer")
        eq(len(admin.get(kpath(ws)).json["keys"]), 9, "number of keys")

    with t("canaries: the audit log carries none"):
        r = admin.get("/api/workspaces/%s/audit" % ws)
        expect(200, r)
        true(len(r.json.get("entries", [])) >= 9, "expected key entries in %s" % r.describe())
        eq(find_leaks(r.raw, canaries), [], "canary forms in GET audit")

    with t("canaries: the API answers carried none"):
        eq(find_leaks(b"\n".join(answers), canaries), [], "canary forms in answers")

    dumps = {}
    with t("canaries: mariadb-dump of the database (with the stack's db credentials) "
           "holds the workspace's rows"):
        dumps["plain"] = mariadb_dump(s)
        dumps["hex-blob"] = mariadb_dump(s, hex_blob=True)
        wid = ws_id(s, ws)
        for name, d in dumps.items():
            true(wid.encode() in d, "%s dump lacks workspace id %s" % (name, wid))
            true(b"INSERT INTO `provider_keys`" in d, "%s dump lacks provider_keys rows" % name)
            true(b"INSERT INTO `workspace_keys`" in d, "%s dump lacks workspace_keys" % name)
            # The masked hint (first 7 and last 4 characters) is stored next to the ciphertext.
            for m in masked:
                true(m.encode() in d, "%s dump lacks the masked hint %r" % (name, m))

    with t("canaries: no canary in the dump in any form (raw, hex, base64, base64url at "
           "offsets 0/1/2, or a 12-character piece of the hidden part)"):
        true(bool(dumps), "no dump")
        for name, d in dumps.items():
            eq(find_leaks(d, canaries), [], "canary forms in the %s dump" % name)

    with t("canaries: no canary in the stack's logs in any form"):
        logs = s.log_text().encode("utf-8", "replace")
        true(len(logs) > 0, "log_text() is empty: cannot check")
        eq(find_leaks(logs, canaries), [], "canary forms in the logs")


# ---------------------------------------------------------------------------------------------
# (b) moved and altered ciphertexts

def part_tamper(t, s, admin):
    stub = s.stub
    with t.setup("tamper: workspaces A and B with anthropic keys a1, a2, b1 (stub: ok)"):
        ws_a = create_workspace(admin)["slug"]
        ws_b = create_workspace(admin)["slug"]
        sec = {"a1": "sk-ant-api03-" + rnd(40), "a2": "sk-ant-api03-" + rnd(40),
               "b1": "sk-ant-api03-" + rnd(40)}
        for v in sec.values():
            stub.set_key(v, "ok")
        got = add_keys(admin, ws_a, "anthropic", [sec["a1"], sec["a2"]])
        ids = {"a1": got[0]["id"], "a2": got[1]["id"]}
        ids["b1"] = add_keys(admin, ws_b, "anthropic", [sec["b1"]])[0]["id"]
        ct = {k: bytes.fromhex(secret_hex(s, ids[k])) for k in ids}
        wid_a, wid_b = ws_id(s, ws_a), ws_id(s, ws_b)

    with t("tamper: ciphertexts have the documented format (0x01, version 1, nonce, ct, tag)"):
        for k, c in ct.items():
            eq(len(c), 1 + 4 + 12 + len(sec[k]) + 16, "length of %s's ciphertext" % k)
            eq(c[:5], b"\x01\x00\x00\x00\x01", "header of %s" % k)
        true(ct["a1"][5:17] != ct["a2"][5:17], "two fields share a nonce")

    with t("tamper: baseline: a1 and b1 test valid"):
        expect_valid_test(admin, ws_a, ids["a1"], "test a1")
        expect_valid_test(admin, ws_b, ids["b1"], "test b1")

    def refused(label, ws, kid, raw, never=()):
        """Store raw as kid's secret, test it: 500 naming the vault, status unchanged, no
        request to the stub with the key or with any secret of never; then restore."""
        before = get_key(admin, ws, kid)
        own = [k for k, i in ids.items() if i == kid][0]
        seen_before = stub_key_count(stub, sec[own])
        original = ct[own]
        set_secret(s, kid, raw)
        try:
            r = key_test(admin, ws, kid)
            expect_vault_refusal(r, "%s: POST test" % label)
            leaked = [v[:12] + "..." for v in never if v in r.text]
            eq(leaked, [], "%s: secrets in the answer" % label)
            after = get_key(admin, ws, kid)
            eq(after.get("status"), before.get("status"), "%s: status after the refusal" % label)
            eq(stub_key_count(stub, sec[own]) - seen_before, 0,
               "%s: requests to the stub with the key's own secret" % label)
            eq(stub_requests_with(stub, list(never)), [],
               "%s: requests to the stub carrying another key's secret" % label)
        finally:
            set_secret(s, kid, original)

    with t("tamper: a2's ciphertext copied into a1's row: test a1 refused (500 vault), "
           "a2's secret never reaches the stub"):
        refused("copy a2->a1", ws_a, ids["a1"], ct["a2"], never=[sec["a2"]])

    with t("tamper: A's ciphertext copied into B's row: test b1 refused, a2's secret never "
           "reaches the stub"):
        refused("copy a2->b1", ws_b, ids["b1"], ct["a2"], never=[sec["a2"]])

    with t("tamper: tag with its last byte flipped: refused"):
        c = bytearray(ct["a1"])
        c[-1] ^= 0x01
        refused("tag flipped", ws_a, ids["a1"], c)

    with t("tamper: a ciphertext byte flipped: refused"):
        c = bytearray(ct["a1"])
        c[17 + 3] ^= 0x80
        refused("ciphertext flipped", ws_a, ids["a1"], c)

    with t("tamper: a nonce byte flipped: refused"):
        c = bytearray(ct["a1"])
        c[5] ^= 0x01
        refused("nonce flipped", ws_a, ids["a1"], c)

    with t("tamper: truncated by one byte (short tag): refused"):
        refused("truncated 1", ws_a, ids["a1"], ct["a1"][:-1])

    with t("tamper: truncated to the header and nonce: refused"):
        refused("truncated 17", ws_a, ids["a1"], ct["a1"][:17])

    with t("tamper: truncated to nothing: refused"):
        refused("empty", ws_a, ids["a1"], b"")

    with t("tamper: data-key version changed to 2 (no such data key): refused"):
        c = bytearray(ct["a1"])
        c[4] = 2
        refused("version 2", ws_a, ids["a1"], c)

    with t("tamper: version 0 and format byte 0x02: refused"):
        c = bytearray(ct["a1"])
        c[4] = 0
        refused("version 0", ws_a, ids["a1"], c)
        c = bytearray(ct["a1"])
        c[0] = 2
        refused("format 2", ws_a, ids["a1"], c)

    with t("tamper: after restoring the ciphertexts, a1 and b1 test valid again"):
        expect_valid_test(admin, ws_a, ids["a1"], "test a1")
        expect_valid_test(admin, ws_b, ids["b1"], "test b1")

    with t("tamper: A's wrapped data key copied into B's workspace_keys row: B's key refused, "
           "and works again once restored"):
        wa = s.sql("SELECT HEX(wrapped), master_key_id FROM workspace_keys "
                   "WHERE workspace_id = ? AND version = 1", wid_a)
        wb = s.sql("SELECT HEX(wrapped), master_key_id FROM workspace_keys "
                   "WHERE workspace_id = ? AND version = 1", wid_b)
        true(len(wa) == 1 and len(wb) == 1, "data key rows: %r %r" % (wa, wb))
        eq(len(bytes.fromhex(wa[0][0])), 12 + 32 + 16, "length of a wrapped data key")
        s.sql("UPDATE workspace_keys SET wrapped = ? WHERE workspace_id = ? AND version = 1",
              bytes.fromhex(wa[0][0]), wid_b)
        try:
            seen = stub_key_count(stub, sec["b1"])
            expect_vault_refusal(key_test(admin, ws_b, ids["b1"]), "test b1")
            eq(stub_key_count(stub, sec["b1"]) - seen, 0, "requests with b1's secret")
        finally:
            s.sql("UPDATE workspace_keys SET wrapped = ? WHERE workspace_id = ? AND version = 1",
                  bytes.fromhex(wb[0][0]), wid_b)
        expect_valid_test(admin, ws_b, ids["b1"], "test b1 after restoring")

    with t("tamper: adding a key to B while its data key is A's is refused (no key sealed "
           "under a garbage data key)"):
        s.sql("UPDATE workspace_keys SET wrapped = ? WHERE workspace_id = ? AND version = 1",
              bytes.fromhex(wa[0][0]), wid_b)
        try:
            newsec = "sk-ant-api03-" + rnd(40)
            r = admin.post(kpath(ws_b), json={"provider": "anthropic", "keys": newsec})
            expect_vault_refusal(r, "POST keys")
            eq(s.sql("SELECT COUNT(*) FROM provider_keys WHERE workspace_id = ?", wid_b),
               [("1",)], "B's provider_keys rows")
        finally:
            s.sql("UPDATE workspace_keys SET wrapped = ? WHERE workspace_id = ? AND version = 1",
                  bytes.fromhex(wb[0][0]), wid_b)

    with t("tamper: listing keys never decrypts: GET keys answers 200 while a row is "
           "corrupt"):
        c = bytearray(ct["a2"])
        c[-1] ^= 0xff
        set_secret(s, ids["a2"], c)
        try:
            r = admin.get(kpath(ws_a))
            expect(200, r)
            eq(sorted(k["id"] for k in r.json["keys"]), sorted([ids["a1"], ids["a2"]]), "ids")
        finally:
            set_secret(s, ids["a2"], ct["a2"])


# ---------------------------------------------------------------------------------------------
# (e) workspace deletion

def part_delete(t, s, admin):
    with t.setup("delete: a workspace with keys of two providers"):
        ws = create_workspace(admin)["slug"]
        wid = ws_id(s, ws)
        add_keys(admin, ws, "anthropic", ["sk-ant-api03-" + rnd(40), "sk-ant-api03-" + rnd(40)])
        kid = add_keys(admin, ws, "google", ["AIzaSy" + rnd(33)])[0]["id"]
        expect(200, admin.put("/api/workspaces/%s/providers" % ws,
                              json={"primary": "anthropic", "fallbackChain": ["google"]}),
               "PUT providers")

    with t("delete: before, workspace_keys and provider_keys hold its rows"):
        eq(s.sql("SELECT COUNT(*) FROM provider_keys WHERE workspace_id = ?", wid), [("3",)],
           "provider_keys rows")
        n = int(s.sql("SELECT COUNT(*) FROM workspace_keys WHERE workspace_id = ?", wid)[0][0])
        true(n >= 1, "no workspace_keys row")

    with t("delete: DELETE /api/workspaces/{ws} as instance admin: 204"):
        expect(204, admin.delete("/api/workspaces/%s" % ws))

    with t("delete: its workspace_keys rows are gone (crypto-shredding)"):
        eq(s.sql("SELECT COUNT(*) FROM workspace_keys WHERE workspace_id = ?", wid), [("0",)],
           "workspace_keys rows")

    with t("delete: its provider_keys and provider_settings rows are gone"):
        eq(s.sql("SELECT COUNT(*) FROM provider_keys WHERE workspace_id = ?", wid), [("0",)],
           "provider_keys rows")
        eq(s.sql("SELECT COUNT(*) FROM provider_settings WHERE workspace_id = ?", wid),
           [("0",)], "provider_settings rows")

    with t("delete: the workspace's keys answer 404 afterwards"):
        expect_error(admin.get(kpath(ws)), 404, "not_found")
        expect_error(key_test(admin, ws, kid), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# (c) master key at start, (d) rekey: one private stack

def part_private(t):
    d = tempfile.mkdtemp(prefix="kr-vt-", dir="/tmp")
    with t.setup("private stack: start"):
        p = krstack.Stack.start(d)
        admin = admin_client(p)
        stub = p.stub
    try:
        part_master_key(t, p, admin, stub)
        part_rekey(t, p, admin, stub)
    finally:
        problems = p.down()
        with t("private stack: stops cleanly without sanitizer reports"):
            eq(problems, [], "problems")
        if not problems and t.failed == 0:
            shutil.rmtree(d, ignore_errors=True)
        else:   # keep the logs and configuration, not the 180 MB database
            shutil.rmtree(os.path.join(d, "mariadb"), ignore_errors=True)
            print("# private stack's logs kept in %s/logs" % d)


def part_master_key(t, p, admin, stub):
    mk = p.p("master.key")
    with t.setup("master key: a key in the private stack's default workspace tests valid"):
        sec = "sk-ant-api03-" + rnd(40)
        stub.set_key(sec, "ok")
        kid = add_keys(admin, p.workspace, "anthropic", [sec])[0]["id"]
        expect_valid_test(admin, p.workspace, kid)
        original = mk.read_bytes()
        original_mode = os.stat(mk).st_mode & 0o7777
        eq(original_mode, 0o400, "mode of master.key")
        problems = p.stop_service("fcgi") + p.stop_service("runner")
        eq(problems, [], "stopping fcgi and runner")

    def refused_at_start(what, expect_in):
        for prog in ("keyrelay-fcgi", "keyrelay-runner"):
            rc, out, served = run_program(p, prog)
            true(rc is not None, "%s with %s did not exit within 60 s (it runs)\n%s"
                 % (prog, what, out[-1500:]))
            true(rc != 0, "%s with %s exited 0\n%s" % (prog, what, out[-1500:]))
            true(not served, "%s with %s listened on api.sock" % (prog, what))
            low = out.lower()
            true("master key" in low, "%s: the message does not name the master key:\n%s"
                 % (prog, out[-1500:]))
            for piece in expect_in:
                true(piece in out, "%s: %r not in its message:\n%s" % (prog, piece, out[-1500:]))
        eq(p.sql("SELECT COUNT(*) FROM master_keys WHERE id = 'k1'"), [("1",)],
           "master_keys rows of k1")
        r = admin.get(kpath(p.workspace))
        true(r.status != 200, "the API answered 200 without keyrelay-fcgi: %s" % r.describe())

    try:
        with t("master key: other 32 bytes (mode 0400): keyrelay-fcgi and keyrelay-runner "
               "exit non-zero naming the master key, never serving"):
            write_key_file(mk, random_raw_key())
            refused_at_start("a wrong master key", ["'k1'"])

        with t("master key: other 64 hex digits: refused the same way"):
            write_key_file(mk, secrets.token_hex(32).encode() + b"\n")
            refused_at_start("a wrong hex master key", ["'k1'"])

        with t("master key: file missing: refused, naming it"):
            os.chmod(mk, 0o600)
            os.unlink(mk)
            refused_at_start("no master key file", ["'k1'", str(mk)])

        with t("master key: the right key but readable by others (0644): refused"):
            write_key_file(mk, original, mode=0o644)
            refused_at_start("a world-readable master key file", ["'k1'"])

        with t("master key: the right key given as 32 characters of text: refused"):
            write_key_file(mk, rnd(32).encode())
            refused_at_start("a text master key", ["'k1'"])

        with t("master key: keyrelay-admin rekey with a wrong key: exit 1 naming it"):
            write_key_file(mk, random_raw_key())
            r = p.admin("rekey")
            eq(r.returncode, 1, "exit status")
            true("master key" in r.stderr.lower() and "k1" in r.stderr,
                 "message: %r" % r.stderr[-800:])
    finally:
        write_key_file(mk, original, mode=0o400)

    with t("master key: restored: the programs start and the key tests valid again"):
        p.start_service("fcgi")
        p.start_service("runner")
        p.wait_healthy()
        expect_valid_test(admin, p.workspace, kid)

    part_wrong_key_db_down(t, p, admin, stub, kid, original)


def part_wrong_key_db_down(t, p, admin, stub, kid, original):
    """A wrong master key while MariaDB is down at start: keyrelay-fcgi cannot check it then
    (kr_startup: "master keys are checked on first use"), so it must not use it once the
    database is back: no data key wrapped under it, no secret sealed with it."""
    mk = p.p("master.key")
    check_before = p.sql("SELECT check_hmac FROM master_keys WHERE id = 'k1'")
    made = {}
    with t("master key: a wrong key while MariaDB is down at start is never used once the "
           "database is back (adding a key to a new workspace is refused)"):
        eq(p.stop_service("fcgi"), [], "stopping fcgi")
        p.stop_mariadb()
        write_key_file(mk, random_raw_key())
        try:
            started = True
            try:
                p.start_service("fcgi")
            except krstack.StackError:
                started = False     # refusing to start without checking is fine too
            p.start_mariadb()
            if started:
                p.wait_healthy()
                ws = create_workspace(admin)["slug"]
                sx = "sk-ant-api03-" + rnd(40)
                stub.set_key(sx, "ok")
                r = admin.post(kpath(ws), json={"provider": "anthropic", "keys": [sx]})
                if r.status == 201:
                    made.update(ws=ws, id=r.json["keys"][0]["id"], secret=sx)
                wrapped = p.sql("SELECT COUNT(*) FROM workspace_keys WHERE workspace_id = ?",
                                ws_id(p, ws))
                true(r.status != 201, "POST keys with an unchecked wrong master key: %s"
                     % r.describe())
                eq(wrapped, [("0",)], "data keys wrapped under the wrong master key")
                r = key_test(admin, p.workspace, kid)
                true(r.status != 200 or r.json.get("valid") is not True,
                     "a key tested valid under a wrong master key: %s" % r.describe())
        finally:
            write_key_file(mk, original, mode=0o400)
            p.stop_service("fcgi")
            if not p.running("mariadb"):
                p.start_mariadb()

    with t("master key: after that, the right key still starts, the check row is unchanged, "
           "and keys added meanwhile are readable"):
        eq(p.sql("SELECT check_hmac FROM master_keys WHERE id = 'k1'"), check_before,
           "check row of k1")
        try:
            p.start_service("fcgi")
        except krstack.StackError as e:
            # Repair (a data key wrapped under the wrong key makes the right one fail its
            # sample check) so that the rest of the test can run, then report.
            if made:
                p.sql("DELETE FROM workspaces WHERE slug = ?", made["ws"])
            p.start_service("fcgi")
            raise CheckError("keyrelay-fcgi with the right key did not start: %s"
                             % str(e)[:1500])
        p.wait_healthy()
        expect_valid_test(admin, p.workspace, kid)
        if made:
            r = key_test(admin, made["ws"], made["id"])
            ok = r.status == 200 and r.json.get("valid") is True
            p.sql("DELETE FROM workspaces WHERE slug = ?", made["ws"])
            true(ok, "the key added under the unchecked wrong master key is lost with the "
                 "right one: %s" % r.describe())


def part_rekey(t, p, admin, stub):
    k1 = p.p("master.key")
    k2 = p.p("master2.key")
    keys = {}      # workspace slug -> [(key id, secret)]
    lock = threading.Lock()

    def make_ws(i):
        c = admin.clone()
        slug = create_workspace(c, slug="rk%03d-%s" % (i, secrets.token_hex(3)))["slug"]
        n = 2 if i % 50 == 0 else 1
        secs = ["sk-ant-api03-" + rnd(40) for _ in range(n)]
        for sx in secs:
            stub.set_key(sx, "ok")
        got = add_keys(c, slug, "anthropic", secs)
        with lock:
            keys[slug] = [(g["id"], sx) for g, sx in zip(got, secs)]

    with t.setup("rekey: %d workspaces with keys (data keys under k1)" % REKEY_WORKSPACES):
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(make_ws, range(REKEY_WORKSPACES)))
        eq(len(keys), REKEY_WORKSPACES, "workspaces made")
        rows = master_rows(p)
        eq(set(rows), {"k1"}, "master ids of the data keys")
        true(int(rows["k1"]) >= REKEY_WORKSPACES, "data key rows: %r" % rows)

    def all_valid(sample=None):
        items = [(ws, kid) for ws, lst in keys.items() for kid, _ in lst]
        if sample:
            items = items[::max(1, len(items) // sample)]
        bad = []

        def one(item):
            ws, kid = item
            r = key_test(admin.clone(), ws, kid)
            if not (r.status == 200 and r.json.get("valid") is True):
                return "%s/%s: %s" % (ws, kid, r.describe(300))
            return None
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            bad = [x for x in ex.map(one, items) if x]
        eq(bad[:5], [], "keys that did not test valid (%d of %d)" % (len(bad), len(items)))

    both = "k1=file:%s,k2=file:%s" % (k1, k2)
    with t.setup("rekey: k2 added (mode 0400) and made active; programs restarted"):
        write_key_file(k2, secrets.token_hex(32).encode() + b"\n")
        set_config(p, secrets__master_keys=both, secrets__active_master_key="k2")
        restart_programs(p)

    with t("rekey: with k1 and k2 loaded, keys under k1 still test valid"):
        all_valid(sample=20)

    with t("rekey: a new workspace's data key is wrapped under k2"):
        slug = create_workspace(admin)["slug"]
        sx = "sk-ant-api03-" + rnd(40)
        stub.set_key(sx, "ok")
        keys[slug] = [(add_keys(admin, slug, "anthropic", [sx])[0]["id"], sx)]
        eq(p.sql("SELECT master_key_id FROM workspace_keys WHERE workspace_id = ?",
                 ws_id(p, slug)), [("k2",)], "master id of the new data key")

    old_before = int(master_rows(p).get("k1", 0))
    killed = {}
    with t("rekey: keyrelay-admin rekey killed (SIGKILL) after its first progress line"):
        argv = [str(p.bin_dir / "keyrelay-admin"), "--config", p.config, "rekey"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=program_env(p))
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line.decode("utf-8", "replace").rstrip())
            if line.startswith(b"rewrapped "):
                proc.kill()
                break
        proc.wait()
        proc.stderr.close()
        killed["lines"] = lines
        true(any(x.startswith("rewrapped 1 of %d" % old_before) for x in lines),
             "expected a progress line 'rewrapped 1 of %d ...', got %r" % (old_before, lines))
        eq(proc.returncode, -signal.SIGKILL, "exit status (killed)")

    with t("rekey: the kill landed part-way: some data keys under k2, some still under k1"):
        rows = master_rows(p)
        killed["rows"] = rows
        true(0 < int(rows.get("k1", 0)) < old_before,
             "rows under k1: %s of %d before (rows: %r)" % (rows.get("k1"), old_before, rows))

    with t("rekey: part-way, keys of rewrapped and not yet rewrapped workspaces test valid"):
        all_valid(sample=20)

    with t("rekey: part-way, a configuration without k1 is refused at start, naming k1"):
        set_config(p, secrets__master_keys="k2=file:%s" % k2, secrets__active_master_key="k2")
        try:
            p.stop_service("runner")
            rc, out, served = run_program(p, "keyrelay-runner")
            true(rc not in (None, 0), "keyrelay-runner without k1 exit status %r:\n%s"
                 % (rc, out[-1200:]))
            true("k1" in out and "master key" in out.lower(), "message: %r" % out[-1200:])
        finally:
            set_config(p, secrets__master_keys=both, secrets__active_master_key="k2")
            p.start_service("runner")

    with t("rekey: run again, twice at the same time: both exit 0 and say 'done'; each "
           "counts the rows left"):
        left = int(master_rows(p).get("k1", 0))
        argv = [str(p.bin_dir / "keyrelay-admin"), "--config", p.config, "rekey"]
        procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=program_env(p))
                 for _ in range(2)]
        outs = [pr.communicate(timeout=300) for pr in procs]
        errs = "\n".join(o[1] for o in outs)
        killed["lines"] = killed.get("lines", []) + errs.splitlines()
        eq([pr.returncode for pr in procs], [0, 0], "exit statuses (stderr: %s)" % errs[-1500:])
        for pr, (_, err) in zip(procs, outs):
            true("done" in err, "no 'done' in %r" % err[-400:])
            prog = re.findall(r"rewrapped (\d+) of (\d+)", err)
            true(all(int(tot) <= left and int(n) <= int(tot) for n, tot in prog),
                 "progress beyond the %d rows left: %r" % (left, prog[-3:]))
        true(any("rewrapped %d of %d" % (left, left) in o[1] for o in outs) or
             all("rewrapped" in o[1] for o in outs),
             "no run reported progress over the rows left: %r" % errs[-800:])

    with t("rekey: every workspace_keys row is now under k2"):
        rows = master_rows(p)
        eq(set(rows), {"k2"}, "master ids of the data keys (%r)" % rows)
        eq(p.sql("SELECT COUNT(*) FROM workspace_keys WHERE master_key_id = 'k2' AND "
                 "rewrapped_at IS NULL AND workspace_id IN (SELECT id FROM workspaces "
                 "WHERE slug LIKE 'rk%')"), [("0",)], "rewrapped rows without rewrapped_at")

    with t("rekey: the output never shows key material"):
        text = "\n".join(killed.get("lines", []))
        for path in (k1, k2):
            raw = path.read_bytes().strip()
            true(raw.decode("ascii", "replace") not in text, "master key material in output")

    with t("rekey: every key of every workspace tests valid"):
        all_valid()

    with t("rekey: a third run has nothing to do and changes nothing"):
        before = p.sql("SELECT workspace_id, version, HEX(wrapped) FROM workspace_keys "
                       "ORDER BY workspace_id, version")
        r = p.admin("rekey")
        eq(r.returncode, 0, "exit status (stderr: %s)" % r.stderr[-800:])
        after = p.sql("SELECT workspace_id, version, HEX(wrapped) FROM workspace_keys "
                      "ORDER BY workspace_id, version")
        true(before == after, "wrapped keys changed")

    with t("rekey: k1 removed from the configuration, programs restarted: they start"):
        set_config(p, secrets__master_keys="k2=file:%s" % k2, secrets__active_master_key="k2")
        restart_programs(p)

    with t("rekey: without k1, every key still tests valid"):
        all_valid()

    with t("rekey: without k1, a new key can be added and used"):
        sx = "sk-ant-api03-" + rnd(40)
        stub.set_key(sx, "ok")
        ws0 = next(iter(keys))
        kid = add_keys(admin, ws0, "anthropic", [sx])[0]["id"]
        expect_valid_test(admin, ws0, kid)
        true(stub_key_count(stub, sx) >= 1, "the new key did not reach the stub")

    with t("rekey: duplicate detection survives the rekey: an existing key added again is "
           "409"):
        ws0 = next(iter(keys))
        r = admin.post(kpath(ws0), json={"provider": "anthropic", "keys": [keys[ws0][0][1]]})
        expect_error(r, 409, "conflict")

    env_name = "KR_VT_MASTER_K2_" + secrets.token_hex(3).upper()
    k2_text = k2.read_bytes().decode().strip()
    with t("master key from the environment (k2=env:NAME): programs start, keys test valid"):
        p.state.setdefault("env", {})[env_name] = k2_text
        p._extra_env[env_name] = k2_text
        set_config(p, secrets__master_keys="k2=env:%s" % env_name)
        restart_programs(p)
        all_valid(sample=10)

    with t("master key from the environment: wiped from /proc/PID/environ of keyrelay-fcgi "
           "and keyrelay-runner"):
        for name in ("fcgi", "runner"):
            pid = int(p.p("run", name + ".pid").read_text().split()[0])
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = f.read()
            true(k2_text.encode() not in environ, "%s: the master key is in its environment"
                 % name)
            true(b"\0" + env_name.encode() + b"=" + k2_text.encode()[:8] not in environ,
                 "%s: the variable still holds the key" % name)

    with t("master keys: kept in a locked mapping excluded from core dumps (smaps VmFlags "
           "lo and dd) in keyrelay-fcgi"):
        pid = int(p.p("run", "fcgi.pid").read_text().split()[0])
        with open("/proc/%d/smaps" % pid) as f:
            flags = [ln.split(":", 1)[1].split() for ln in f if ln.startswith("VmFlags:")]
        # AddressSanitizer intercepts mlock() as a no-op, so a sanitized build cannot show
        # "lo"; there only the core dump exclusion of a small read-only page is checked.
        asan = b"__asan_init" in (p.bin_dir / "keyrelay-fcgi").read_bytes()
        if asan:
            true(any("dd" in fl and "wr" not in fl and "io" not in fl for fl in flags),
                 "no read-only mapping excluded from core dumps")
            print("# note: AddressSanitizer build: mlock is a no-op, 'lo' not checked")
        else:
            true(any("lo" in fl and "dd" in fl for fl in flags),
                 "no mapping is both locked and excluded from core dumps")

    with t("master keys: no master key material in the private stack's logs"):
        logs = p.log_text().encode("utf-8", "replace")
        raw = bytes.fromhex(k2_text)
        for form in (k2_text.encode(), k2_text.upper().encode(), base64.b64encode(raw),
                     base64.urlsafe_b64encode(raw).rstrip(b"=")):
            true(form not in logs, "master key k2 in the logs")

    with t("master key file back for k2, programs restarted"):
        set_config(p, secrets__master_keys="k2=file:%s" % k2)
        restart_programs(p)

    with t("rekey: a wrong key under a known id is refused even when its check row was "
           "deleted, and the refusal does not poison the check of the right key"):
        good = k2.read_bytes()
        p.stop_service("runner")
        p.stop_service("fcgi")
        p.sql("DELETE FROM master_keys WHERE id = 'k2'")
        write_key_file(k2, random_raw_key())
        try:
            rc, out, served = run_program(p, "keyrelay-fcgi")
            true(rc not in (None, 0) and not served,
                 "keyrelay-fcgi with a wrong k2 and no check row: exit %r served %r\n%s"
                 % (rc, served, out[-1200:]))
        finally:
            write_key_file(k2, good)
        rc, out, served = run_program(p, "keyrelay-runner", timeout=8)
        true(rc is None, "keyrelay-runner with the right k2 afterwards exited %r:\n%s"
             % (rc, out[-1200:]))


def body(t):
    s = krstack.Stack.from_env()
    with t.setup("setup: instance admin of the shared stack"):
        admin = admin_client(s)
    part_canaries(t, s, admin)
    part_tamper(t, s, admin)
    part_delete(t, s, admin)
    part_private(t)


if __name__ == "__main__":
    run("vault", body)
