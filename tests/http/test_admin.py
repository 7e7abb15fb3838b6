#!/usr/bin/env python3
"""keyrelay-admin and the programs' configuration checks (issue 2, items 2, 3 and 6):
migrate applied twice changes nothing, users, workspaces, members and tokens made from the
shell work through the API, passwords come from stdin (never argv), wrong usage exits 2,
errors exit 1 with a message, and a missing or invalid setting stops a program at start
with a message naming it.

Runs against the shared stack ($KEYRELAY_TEST_STACK) with names of its own.
"""
import os
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import Client, eq, expect, run, true  # noqa: E402


def body(t):
    s = krstack.Stack.from_env()
    tag = uuid.uuid4().hex[:8]
    email = "cli-%s@example.test" % tag
    password = "cli password " + uuid.uuid4().hex

    with t("migrate again: nothing applied, the schema version unchanged"):
        before = s.sql("SELECT COUNT(*), MAX(version) FROM schema_migrations")[0]
        r = s.admin("migrate")
        eq(r.returncode, 0, "exit status (stderr %r)" % r.stderr)
        true("0 applied now" in r.stderr, "stderr %r" % r.stderr)
        eq(s.sql("SELECT COUNT(*), MAX(version) FROM schema_migrations")[0], before,
           "schema_migrations")

    with t("status: database, schema version and live runners"):
        r = s.admin("status")
        eq(r.returncode, 0, "exit status")
        true("database: ok" in r.stdout and "schema version: " in r.stdout, r.stdout)
        true("runners: " in r.stdout and "runners: 0" not in r.stdout, r.stdout)

    with t("create-user reads the password from stdin; the user signs in through the API"):
        r = s.admin("create-user", "--email", email, "--name", "CLI user", input=password + "\n")
        eq(r.returncode, 0, "exit status (stderr %r)" % r.stderr)
        user_id = r.stdout.strip()
        eq(len(user_id), 36, "the user id printed")
        c = Client(s.base_url)
        expect(200, c.post("/api/auth/login", json={"email": email, "password": password}))
        true(password not in r.stdout + r.stderr, "the password was echoed")

    with t("create-user refuses a short password, a taken e-mail and missing options"):
        r = s.admin("create-user", "--email", "x-" + email, "--name", "n", input="short\n")
        eq(r.returncode, 1, "short password: exit status")
        true("at least 12" in r.stderr, r.stderr)
        r = s.admin("create-user", "--email", email, "--name", "n", input=password + "\n")
        eq(r.returncode, 1, "taken e-mail: exit status")
        true("exists already" in r.stderr, r.stderr)
        r = s.admin("create-user", "--email", email)
        eq(r.returncode, 2, "missing --name: exit status")
        true("usage:" in r.stderr, r.stderr)
        eq(s.admin("no-such-command").returncode, 2, "unknown command")

    with t("create-user counts --name in characters, as the API does: 200 accented letters "
           "(400 bytes) pass, 201 do not"):
        name = "\u00e9" * 200
        r = s.admin("create-user", "--email", "n-" + email, "--name", name,
                    input=password + "\n")
        eq(r.returncode, 0, "200 characters: exit status (stderr %r)" % r.stderr)
        eq(s.sql("SELECT name FROM users WHERE id = ?", r.stdout.strip()), [(name,)],
           "the stored name")
        r = s.admin("create-user", "--email", "m-" + email, "--name", name + "e",
                    input=password + "\n")
        eq(r.returncode, 1, "201 characters: exit status")
        true("1 to 200 characters" in r.stderr, r.stderr)

    with t("wrong usage is told before the configuration is read: exit 2 and the command's "
           "usage, with a configuration that does not load; --help: exit 0, on stdout"):
        exe = str(s.bin_dir / "keyrelay-admin")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for args in (["create-user", "--email", email], ["create-user", "--email"],
                     ["create-user", "--email", email, "--name", "n", "--admin"],
                     ["status", "now"], ["add-member", "--workspace", "w", "--email", email]):
            r = subprocess.run([exe, "--config", "/nonexistent/keyrelay.conf"] + args,
                               capture_output=True, text=True, env=env, timeout=30,
                               stdin=subprocess.DEVNULL)
            eq((r.returncode, r.stderr.startswith("usage: keyrelay-admin " + args[0])),
               (2, True), "%s: exit status, usage first (stderr %r)" % (args, r.stderr))
        r = subprocess.run([exe, "--help"], capture_output=True, text=True, env=env,
                           timeout=30)
        eq((r.returncode, "commands:" in r.stdout, r.stderr), (0, True, ""),
           "--help: exit status, usage on stdout, nothing on stderr")

    slug = "cli-" + tag
    with t("create-workspace, add-member and create-token; the token works under its workspace"):
        r = s.admin("create-workspace", "--slug", slug, "--name", "CLI", "--owner", email)
        eq(r.returncode, 0, "create-workspace (stderr %r)" % r.stderr)
        r = s.admin("add-member", "--workspace", slug, "--email", s.admin_email,
                    "--role", "viewer")
        eq(r.returncode, 0, "add-member (stderr %r)" % r.stderr)
        r = s.admin("create-token", "--workspace", slug, "--name", "cli", "--role", "member")
        eq(r.returncode, 0, "create-token (stderr %r)" % r.stderr)
        secret = r.stdout.strip()
        true(secret.startswith("krt_") and len(secret) == 47, "token %r" % secret[:6])
        tc = Client(s.base_url, bearer=secret)
        members = tc.get("/api/workspaces/%s/members" % slug)
        expect(200, members)
        roles = {m["email"]: m["role"] for m in members.json["members"]}
        eq(roles, {email: "admin", s.admin_email: "viewer"}, "members")

    with t("errors: unknown workspace, bad role, bad slug exit 1 with a message"):
        r = s.admin("create-token", "--workspace", "no-such-" + tag, "--name", "x",
                    "--role", "admin")
        eq(r.returncode, 1, "unknown workspace")
        true("no workspace" in r.stderr, r.stderr)
        r = s.admin("add-member", "--workspace", slug, "--email", email, "--role", "owner")
        eq(r.returncode, 1, "bad role")
        r = s.admin("create-workspace", "--slug", "Bad_Slug", "--name", "x")
        eq(r.returncode, 1, "bad slug")

    with t("a program with a missing or invalid setting stops at start naming it"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRELAY_")}
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("db.name = keyrelay\n")
            f.flush()
            for prog in ("keyrelay-fcgi", "keyrelay-runner", "keyrelay-admin"):
                argv = [str(s.bin_dir / prog), "--config", f.name] + (
                    ["status"] if prog == "keyrelay-admin" else [])
                r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
                eq(r.returncode, 1, "%s without db.password: exit status" % prog)
                true("config: db.password" in r.stderr, "%s: %r" % (prog, r.stderr))
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("db.password = x\nfcgi.threads = many\n")
            f.flush()
            r = subprocess.run([str(s.bin_dir / "keyrelay-fcgi"), "--config", f.name],
                               capture_output=True, text=True, env=env, timeout=30)
            eq(r.returncode, 1, "invalid fcgi.threads: exit status")
            true("config: fcgi.threads" in r.stderr, r.stderr)


if __name__ == "__main__":
    run("admin", body)
