"""Runs the kcat and Python examples of README.md's "Serve a log to Kafka
clients" section as written (the address replaced by the test server's),
and checks what they print."""

import os
import re
import subprocess
import sys

from harness import ROOT, Server, run_tests

README = open(os.path.join(ROOT, "README.md")).read()
SECTION = README.split("## Serve a log to Kafka clients", 1)[1].split("\n## ", 1)[0]


def block(lang):
    m = re.search(r"```" + lang + r"\n(.*?)```", SECTION, re.S)
    assert m, f"no {lang} block in the README section"
    return m.group(1)


def test_the_kcat_example():
    script = block("sh")
    lines = [l for l in script.splitlines() if not l.startswith("streamlog serve")]
    assert len(lines) == 2, lines
    with Server() as s:
        body = "\n".join(lines).replace("127.0.0.1:9092", s.bootstrap)
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", body], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "k1 hello\nk2 world\n", out.stdout


def test_the_python_example():
    with Server() as s:
        subprocess.run(["kcat", "-b", s.bootstrap, "-t", "greetings", "-P", "-K:"],
                       input="k1:hello\nk2:world\n", text=True, check=True, timeout=30)
        code = block("python").replace("127.0.0.1:9092", s.bootstrap)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[b'hello', b'world', b'from python']", out.stdout


if __name__ == "__main__":
    run_tests("README examples", dict(globals()))
