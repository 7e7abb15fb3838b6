#!/usr/bin/env python3
"""`keyrelay-admin import-env --workspace S` (issue 3, item 7): ANTHROPIC_API_KEY,
OPENAI_API_KEY, GEMINI_API_KEY, ZAI_API_KEY and MOONSHOT_API_KEY (comma-separated lists
allowed) move into the workspace's vault: listed masked, named "Imported from <VARIABLE>",
usable (the stub provider receives exactly the trimmed key); entries separated by commas or
line breaks and trimmed of spaces, tabs and carriage returns, as the API trims; a second run
adds nothing; a bad entry is reported (without echoing it) and refused, and the run then exits
1 with the good ones imported; no secret in the output or the logs.

Runs against the shared stack ($KEYRELAY_TEST_STACK) and its stub provider; own workspaces.
"""
import json
import os
import secrets
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (SetupError, admin_client, create_workspace, eq, expect,  # noqa: E402
                      run, true)

PROVIDER_OF = {"ANTHROPIC_API_KEY": "anthropic", "OPENAI_API_KEY": "openai",
               "GEMINI_API_KEY": "google", "ZAI_API_KEY": "zai", "MOONSHOT_API_KEY": "moonshot"}
KEY_HEADERS = ("x-api-key", "authorization", "x-goog-api-key")


def rnd(n=32):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def admin_env(s, env=None):
    base = s._env() if hasattr(s, "_env") else dict(os.environ)
    for v in PROVIDER_OF:
        base.pop(v, None)
    base.update(env or {})
    return base


def import_env(s, ws, env):
    argv = [str(s.bin_dir / "keyrelay-admin"), "--config", s.config, "import-env",
            "--workspace", ws]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=admin_env(s, env), timeout=120)


def keys_of(client, ws):
    r = client.get("/api/workspaces/%s/keys" % ws)
    expect(200, r, "GET keys")
    return r, r.json["keys"]


def hint(secret):
    return secret[:7] + "\u2026" + secret[-4:] if len(secret) >= 16 else "\u2026" + secret[-2:]


def stub_key_count(stub, secret):
    n = 0
    for req in stub.requests():
        h = {k.lower(): v for k, v in (req.get("headers") or {}).items()}
        for name in KEY_HEADERS:
            v = h.get(name)
            if isinstance(v, str) and (v == secret or v == "Bearer " + secret):
                n += 1
                break
    return n


def body(t):
    s = krstack.Stack.from_env()
    stub = s.stub
    with t.setup("setup: a workspace with one anthropic key added through the API"):
        admin = admin_client(s)
        ws = create_workspace(admin)["slug"]
        pre = "sk-ant-api03-" + rnd(40)
        r = admin.post("/api/workspaces/%s/keys" % ws,
                       json={"provider": "anthropic", "keys": [pre], "names": ["Manual"]})
        if r.status != 201:
            raise SetupError("add key: %s" % r.describe())
        pre_id = r.json["keys"][0]["id"]

    good = {
        "a1": ("ANTHROPIC_API_KEY", "sk-ant-api03-" + rnd(40)),
        "a2": ("ANTHROPIC_API_KEY", "sk-ant-api03-" + rnd(40)),
        "o1": ("OPENAI_API_KEY", "sk-proj-" + rnd(40)),
        "g1": ("GEMINI_API_KEY", "AIzaSy" + rnd(33)),
        "z1": ("ZAI_API_KEY", rnd(24).lower() + "." + rnd(16)),
        "m1": ("MOONSHOT_API_KEY", "sk-" + rnd(40)),
    }
    bad_oauth = "sk-ant-oat01-" + rnd(40)
    bad_zai = "nodot" + rnd(30)
    env = {
        # spaces around entries, the key added through the API, an OAuth token (refused)
        "ANTHROPIC_API_KEY": " %s , %s,%s,%s" % (good["a1"][1], good["a2"][1], pre, bad_oauth),
        "OPENAI_API_KEY": good["o1"][1] + ",",
        # line breaks (CRLF too) and a tab, as a pasted list has them
        "GEMINI_API_KEY": good["g1"][1],
        "ZAI_API_KEY": "%s\n%s\n" % (good["z1"][1], bad_zai),
        "MOONSHOT_API_KEY": "\t%s\r\n" % good["m1"][1],
    }
    all_secrets = [v for _, v in good.values()] + [pre, bad_oauth, bad_zai]
    outputs = []

    with t("import-env: exit 1 (entries refused), reports 6 imported, 1 already there and 2 "
           "refused"):
        r = import_env(s, ws, env)
        outputs.append(r.stdout + r.stderr)
        eq(r.returncode, 1, "exit status (output: %s%s)" % (r.stdout, r.stderr))
        true("imported 6 key(s) into %s; 1 already there; 2 refused" % ws in r.stderr,
             "no 'imported 6 key(s) into %s; 1 already there; 2 refused' in %r"
             % (ws, r.stderr))

    with t("import-env: the bad entries are reported by variable and position and refused"):
        err = outputs[0]
        true("ANTHROPIC_API_KEY entry 4 refused" in err, "anthropic entry 4 not reported: %r"
             % err)
        true("ZAI_API_KEY entry 2 refused" in err, "zai entry 2 not reported: %r" % err)

    with t("import-env: the output never shows a key"):
        leaked = [x[:10] + "..." for x in all_secrets if x in "\n".join(outputs)]
        eq(leaked, [], "secrets in the output")

    with t("import-env: GET keys lists the keys masked, named 'Imported from <VARIABLE>', "
           "under the right provider, after the existing key"):
        resp, lst = keys_of(admin, ws)
        eq(len(lst), 7, "number of keys (1 manual + 6 imported)")
        by_mask = {k["maskedKey"]: k for k in lst}
        for label, (var, sec) in good.items():
            k = by_mask.get(hint(sec))
            true(k is not None, "%s: no key with maskedKey %r in %s" % (label, hint(sec),
                                                                       resp.describe()))
            eq(k["provider"], PROVIDER_OF[var], "%s: provider" % label)
            eq(k["name"], "Imported from %s" % var, "%s: name" % label)
            eq(k["status"], "untested", "%s: status" % label)
        anth = [k for k in lst if k["provider"] == "anthropic"]
        eq([k["id"] for k in sorted(anth, key=lambda k: k["priority"])][0], pre_id,
           "the manual key keeps the first priority")
        eq([k["maskedKey"] for k in sorted(anth, key=lambda k: k["priority"])][1:],
           [hint(good["a1"][1]), hint(good["a2"][1])], "imported anthropic keys in list order")
        leaked = [x[:10] + "..." for x in all_secrets if x in resp.text]
        eq(leaked, [], "secrets in GET keys")

    with t("import-env: the OAuth token and the malformed Z.ai key were not stored"):
        _, lst = keys_of(admin, ws)
        masks = {k["maskedKey"] for k in lst}
        true(hint(bad_oauth) not in masks and hint(bad_zai) not in masks,
             "a bad entry was stored: %r" % masks)

    with t("import-env: each imported key is stored exactly (trimmed): the stub receives it "
           "and the test is valid"):
        _, lst = keys_of(admin, ws)
        by_mask = {k["maskedKey"]: k for k in lst}
        for label, (var, sec) in good.items():
            stub.set_key(sec, "ok")
            kid = by_mask[hint(sec)]["id"]
            r = admin.post("/api/workspaces/%s/keys/%s/test" % (ws, kid), json={})
            expect(200, r, "test %s" % label)
            eq((r.json.get("valid"), r.json.get("status")), (True, "valid"),
               "%s: test answer %s" % (label, r.text))
            true(stub_key_count(stub, sec) >= 1, "%s: the stub never received the exact key"
                 % label)

    with t("import-env: a second run adds nothing ('imported 0'; exit 1 for the refused ones)"):
        _, before = keys_of(admin, ws)
        r = import_env(s, ws, env)
        outputs.append(r.stdout + r.stderr)
        eq(r.returncode, 1, "exit status (output: %s%s)" % (r.stdout, r.stderr))
        true("imported 0 key(s)" in r.stderr, "no 'imported 0 key(s)' in %r" % r.stderr)
        _, after = keys_of(admin, ws)
        eq(sorted(k["id"] for k in after), sorted(k["id"] for k in before), "key ids")

    with t("import-env: a run with one more entry adds only that one"):
        a3 = "sk-ant-api03-" + rnd(40)
        all_secrets.append(a3)
        env2 = dict(env)
        env2["ANTHROPIC_API_KEY"] = env["ANTHROPIC_API_KEY"] + "," + a3
        env2["ZAI_API_KEY"] = good["z1"][1]
        env2["ANTHROPIC_API_KEY"] = env2["ANTHROPIC_API_KEY"].replace("," + bad_oauth, "")
        r = import_env(s, ws, env2)
        outputs.append(r.stdout + r.stderr)
        eq(r.returncode, 0, "exit status, nothing refused (output: %s%s)"
           % (r.stdout, r.stderr))
        true("imported 1 key(s)" in r.stderr, "no 'imported 1 key(s)' in %r" % r.stderr)
        _, lst = keys_of(admin, ws)
        eq(len(lst), 8, "number of keys")
        true(hint(a3) in {k["maskedKey"] for k in lst}, "the new entry is not listed")

    with t("import-env: without any provider variable, nothing is imported (exit 0)"):
        ws2 = create_workspace(admin)["slug"]
        r = import_env(s, ws2, {})
        eq(r.returncode, 0, "exit status (output: %s%s)" % (r.stdout, r.stderr))
        eq(keys_of(admin, ws2)[1], [], "keys")

    with t("import-env: an unknown workspace: exit 1, nothing imported"):
        ghost = "nows-" + secrets.token_hex(4)
        r = import_env(s, ghost, env)
        outputs.append(r.stdout + r.stderr)
        eq(r.returncode, 1, "exit status (output: %s%s)" % (r.stdout, r.stderr))
        true("no workspace" in r.stderr, "message: %r" % r.stderr)

    with t("import-env: the same keys imported into another workspace are stored there too"):
        ws3 = create_workspace(admin)["slug"]
        r = import_env(s, ws3, {"GEMINI_API_KEY": good["g1"][1]})
        eq(r.returncode, 0, "exit status (output: %s%s)" % (r.stdout, r.stderr))
        eq([k["maskedKey"] for k in keys_of(admin, ws3)[1]], [hint(good["g1"][1])], "keys")

    with t("import-env: imported keys are audited as key.created (api.md: key creation is "
           "recorded)"):
        r = admin.get("/api/workspaces/%s/audit" % ws)
        expect(200, r)
        created = {e.get("target") for e in r.json.get("entries", [])
                   if e.get("action") == "key.created"}
        _, lst = keys_of(admin, ws)
        missing = [k["maskedKey"] for k in lst if k["id"] not in created]
        eq(missing, [], "keys without a key.created audit entry")

    with t("import-env: each imported key's first key_status_changed event carries the key "
           "object of the API (status untested, masked); later ones are the key tests'"):
        wid = s.sql("SELECT id FROM workspaces WHERE slug = ?", ws)[0][0]
        events = {}
        for (payload,) in s.sql("SELECT payload FROM events WHERE workspace_id = ? AND "
                                "type = 'key_status_changed' ORDER BY seq", wid):
            k = json.loads(payload).get("key") or {}
            events.setdefault(k.get("id"), []).append(k)
        _, lst = keys_of(admin, ws)
        fields = ("id", "provider", "name", "maskedKey", "priority")
        got = {k["id"]: [{f: e.get(f) for f in fields + ("status",)}
                         for e in events.get(k["id"], [])][:1]
               for k in lst if k["id"] != pre_id}
        want = {k["id"]: [dict({f: k[f] for f in fields}, status="untested")]
                for k in lst if k["id"] != pre_id}
        untested = [e for k in lst if k["id"] != pre_id for e in events.get(k["id"], [])
                    if e.get("status") == "untested"]
        eq(len(untested), len(want), "events with status untested (one per imported key)")
        eq(got, want, "key_status_changed events of the imported keys")

    with t("import-env: no imported key in the audit log, the events, the outputs or the "
           "stack's logs"):
        r = admin.get("/api/workspaces/%s/audit" % ws)
        ev = s.sql("SELECT payload FROM events WHERE workspace_id = "
                   "(SELECT id FROM workspaces WHERE slug = ?)", ws)
        blob = (r.text + "\n".join(outputs) + s.log_text()
                + "\n".join(row[0] for row in ev))
        leaked = [x[:10] + "..." for x in all_secrets if x in blob]
        eq(leaked, [], "secrets found")


if __name__ == "__main__":
    run("import_env", body)
