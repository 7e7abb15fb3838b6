#!/usr/bin/env python3
"""keyrelay-runner's open-files limit: every call in flight holds a socket, so the runner
raises its soft RLIMIT_NOFILE to runner.max_in_flight + 64 when the hard limit allows, and
warns with the numbers when it does not.

The runner is started on its own with a configuration whose database does not answer
(127.0.0.1:1): the limit is set before the first connection, and the runner keeps retrying
the database meanwhile, so /proc/PID/limits can be read. Needs KEYRELAY_BIN_DIR only.
"""
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from krclient import SetupError, eq, run, true  # noqa: E402


def soft_nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise SetupError("no open-files line in /proc/%d/limits" % pid)


def start(work, max_in_flight, soft, hard):
    """The runner under the given limits; (process, log path)."""
    conf = os.path.join(work, "runner-%d-%d-%d.conf" % (max_in_flight, soft, hard))
    with open(conf, "w") as f:
        f.write("db.host = 127.0.0.1\ndb.port = 1\ndb.name = x\ndb.user = x\n"
                "db.password = x\nlog.level = info\n"
                "secrets.master_keys = k1=file:%s\n" % os.path.join(work, "master.key")
                + "runner.max_in_flight = %d\n" % max_in_flight)
    log = conf + ".log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYRELAY_")}
    exe = os.path.join(os.environ["KEYRELAY_BIN_DIR"], "keyrelay-runner")
    with open(log, "w") as out:
        p = subprocess.Popen(
            [exe, "--config", conf], stdout=out, stderr=subprocess.STDOUT, env=env,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    return p, log


def settled(p, log):
    """Wait until the runner has got past its setup (it logs the database's absence)."""
    for _ in range(100):
        if p.poll() is not None:
            raise SetupError("keyrelay-runner exited (%d): %s" % (p.returncode, open(log).read()))
        if "database" in open(log).read():
            return
        time.sleep(0.05)
    raise SetupError("keyrelay-runner logged nothing about the database: %s" % open(log).read())


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def body(t):
    if "KEYRELAY_BIN_DIR" not in os.environ:
        raise SetupError("KEYRELAY_BIN_DIR is not set")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2064:
        raise SetupError("this test needs a hard open-files limit of 2,064 at least, not %d"
                         % hard)
    hard = 2064 * 2 if hard == resource.RLIM_INFINITY else min(hard, 2064 * 2)
    work = tempfile.mkdtemp(prefix="kr-rlim-")
    try:
        with open(os.path.join(work, "master.key"), "wb") as f:
            f.write(secrets.token_bytes(32))
        os.chmod(os.path.join(work, "master.key"), 0o600)

        with t("max_in_flight 2,000 under a soft limit of 512: raised to 2,064"):
            p, log = start(work, 2000, 512, hard)
            try:
                settled(p, log)
                eq(soft_nofile(p.pid), 2064, "the runner's soft open-files limit")
                true("open files limited" not in open(log).read(), "a warning was logged")
            finally:
                stop(p)

        with t("max_in_flight 2,000 under a hard limit of 512: a warning with the numbers"):
            p, log = start(work, 2000, 512, 512)
            try:
                settled(p, log)
                eq(soft_nofile(p.pid), 512, "the runner's soft open-files limit")
                text = open(log).read()
                true("open files limited to 512, below the 2064 that runner.max_in_flight = "
                     "2000 needs" in text, "no warning with the numbers: %s" % text[-600:])
            finally:
                stop(p)

        with t("max_in_flight 256 under a soft limit of 1,024: left as it is"):
            p, log = start(work, 256, 1024, hard)
            try:
                settled(p, log)
                eq(soft_nofile(p.pid), 1024, "the runner's soft open-files limit")
            finally:
                stop(p)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run("runner_limits", body)
