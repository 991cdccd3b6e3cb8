"""Shared by the client checks: starts `streamlog serve` on a fresh
directory and a free port, and runs a file's `test_*` functions in order,
reporting each. A check fails the run (exit 1) on any failed test."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
STREAMLOG = os.environ.get("STREAMLOG_BIN", os.path.join(ROOT, "target", "debug", "streamlog"))


class Server:
    """`streamlog serve DIR --listen 127.0.0.1:0 ARGS...`, stopped with
    SIGTERM (which must close the log cleanly: exit status 0)."""

    def __init__(self, *args, dir=None):
        self.own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="streamlog-serve-")
        self.proc = subprocess.Popen(
            [STREAMLOG, "serve", self.dir, "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"listening on (\S+)\n", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"serve printed {line!r}; stderr: {self.proc.stderr.read()}")
        self.bootstrap = m.group(1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError("serve did not stop within 20 s of SIGTERM")
            err = self.proc.stderr.read()
            assert rc == 0, f"serve exited with {rc}: {err}"
        return self

    def verify(self):
        """The log verifies clean once the server is stopped."""
        out = subprocess.run([STREAMLOG, "verify", self.dir], capture_output=True, text=True)
        assert out.returncode == 0, f"verify failed: {out.stdout} {out.stderr}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
            if exc[0] is None:
                self.verify()
        finally:
            if self.own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(what, cond, timeout=30.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_tests(client, namespace):
    """Runs every `test_*` function of `namespace`, in file order."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    failed = []
    for name, fn in tests:
        t0 = time.time()
        try:
            fn()
            print(f"  PASS {client}: {name} ({time.time() - t0:.1f} s)", flush=True)
        except Exception:
            failed.append(name)
            print(f"  FAIL {client}: {name}", flush=True)
            traceback.print_exc()
    if failed:
        print(f"{client}: {len(failed)} of {len(tests)} failed: {', '.join(failed)}")
        sys.exit(1)
    print(f"{client}: all {len(tests)} passed")
