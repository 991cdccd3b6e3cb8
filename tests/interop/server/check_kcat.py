"""kcat (librdkafka, Debian's package) against `streamlog serve`: metadata,
produce with acks 0/1/all and zstd, consume from the beginning, the end, an
offset and a timestamp, and a -G group of two members."""

import re
import subprocess
import time

from harness import Server, run_tests, wait_for


def kcat(server, *args, input=None, timeout=30):
    out = subprocess.run(
        ["kcat", "-b", server.bootstrap, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, f"kcat {args} failed: {out.stderr}"
    return out.stdout


def lines(server, topic, *args):
    return kcat(server, "-C", "-t", topic, "-e", "-q", *args).splitlines()


def test_metadata_lists_the_broker_and_auto_created_topics():
    with Server("--partitions", "3") as s:
        kcat(s, "-P", "-t", "auto", input="x\n")
        md = kcat(s, "-L")
        assert f"broker 0 at {s.bootstrap} (controller)" in md, md
        assert 'topic "auto" with 3 partitions' in md, md


def test_produce_with_each_acks_and_zstd_then_consume_in_order():
    with Server() as s:
        for acks, codec in [("0", "none"), ("1", "zstd"), ("all", "none"), ("-1", "zstd")]:
            body = "".join(f"{acks}-{codec}-{i}\n" for i in range(50))
            kcat(s, "-P", "-t", "t", "-X", f"acks={acks}", "-z", codec, input=body)
        got = wait_for("200 records", lambda: (lambda l: l if len(l) == 200 else None)(lines(s, "t", "-o", "beginning", "-f", "%s\n")))
        want = [f"{a}-{c}-{i}" for a, c in [("0", "none"), ("1", "zstd"), ("all", "none"), ("-1", "zstd")] for i in range(50)]
        assert got == want


def test_consume_from_end_offset_and_timestamp():
    with Server() as s:
        kcat(s, "-P", "-t", "t", input="a\nb\n")
        time.sleep(0.05)
        kcat(s, "-P", "-t", "t", input="c\nd\n")
        assert lines(s, "t", "-o", "end") == []
        assert lines(s, "t", "-o", "1", "-f", "%o %s\n") == ["1 b", "2 c", "3 d"]
        assert lines(s, "t", "-o", "-1", "-f", "%s\n") == ["d"]
        ts = int(kcat(s, "-C", "-t", "t", "-o", "2", "-c", "1", "-f", "%T"))
        assert lines(s, "t", "-o", f"s@{ts}", "-f", "%s\n") == ["c", "d"]
        assert lines(s, "t", "-o", f"s@{ts + 10**9}", "-f", "%s\n") == []


def test_a_group_of_two_members_shares_the_partitions():
    with Server("--partitions", "4") as s:
        kcat(s, "-P", "-t", "g", "-K", ":", input="".join(f"k{i}:v{i}\n" for i in range(40)))
        procs = [
            subprocess.Popen(
                ["kcat", "-b", s.bootstrap, "-G", "grp", "-X", "auto.offset.reset=earliest",
                 "-f", "%p %s\n", "g"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for _ in range(2)
        ]
        time.sleep(8)
        outs = []
        for p in procs:
            p.terminate()
            out, err = p.communicate(timeout=20)
            outs.append((out.splitlines(), err))
        values = sorted(v for o, _ in outs for v in (l.split()[1] for l in o))
        # Every record once: commits made as partitions are revoked hold.
        assert values == sorted(f"v{i}" for i in range(40)), outs
        # Each member's last assignment: two disjoint halves of the topic.
        last = []
        for _, err in outs:
            got = [l for l in err.splitlines() if "assigned:" in l]
            assert got, err
            last.append(set(re.findall(r"g \[(\d+)\]", got[-1])))
        assert last[0] and last[1] and not last[0] & last[1], last
        assert last[0] | last[1] == {"0", "1", "2", "3"}, last


if __name__ == "__main__":
    run_tests("kcat", dict(globals()))
