"""kafka-python (PyPI) against `streamlog serve`: admin
create/describe/delete, its default idempotent producer with zstd, groups
with two assignors, commit and resume, and a member killed with SIGKILL
whose partitions move after its session timeout."""

import os
import signal
import subprocess
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.errors import TopicAlreadyExistsError

from harness import Server, run_tests, wait_for


def consumer(s, group, *topics, **extra):
    cfg = dict(bootstrap_servers=s.bootstrap, group_id=group, auto_offset_reset="earliest",
               enable_auto_commit=False)
    cfg.update(extra)
    return KafkaConsumer(*topics, **cfg)


def drain(c, want, timeout=30):
    got = []
    deadline = time.time() + timeout
    while len(got) < want and time.time() < deadline:
        for msgs in c.poll(200).values():
            got.extend(msgs)
    return got


def test_admin_create_describe_alter_and_delete():
    with Server("--no-auto-create-topics") as s:
        a = KafkaAdminClient(bootstrap_servers=s.bootstrap)
        a.create_topics([NewTopic("orders", 3, 1, topic_configs={"retention.bytes": "1048576"})])
        try:
            a.create_topics([NewTopic("orders", 1, 1)])
            raise AssertionError("a second create succeeded")
        except TopicAlreadyExistsError:
            pass
        assert "orders" in a.list_topics()
        res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "orders")])
        assert "'retention.bytes': {'value': '1048576'" in str(res) or "1048576" in str(res), res
        a.create_partitions({"orders": NewPartitions(4)})
        desc = a.describe_topics(["orders"])
        assert len(desc[0]["partitions"]) == 4, desc
        a.delete_topics(["orders"])
        wait_for("the topic to go", lambda: "orders" not in a.list_topics())
        a.close()


def test_default_idempotent_producer_with_zstd():
    with Server("--partitions", "2") as s:
        p = KafkaProducer(bootstrap_servers=s.bootstrap, compression_type="zstd", linger_ms=5)
        assert p.config["enable_idempotence"], "kafka-python should default to idempotence"
        futures = [p.send("idem", key=b"k%d" % (i % 5), value=b"v%d" % i) for i in range(1000)]
        p.flush()
        offsets = [f.get(10).offset for f in futures]
        assert all(o >= 0 for o in offsets)
        c = consumer(s, "reader", "idem")
        got = drain(c, 1000)
        c.close()
        assert sorted(int(m.value[1:]) for m in got) == list(range(1000))
        p.close()


def check_two_members(s, assignor):
    p = KafkaProducer(bootstrap_servers=s.bootstrap)
    for i in range(60):
        p.send("shared", value=b"%d" % i, partition=i % 6)
    p.flush()
    # One thread per member: a member's join blocks until the other
    # rejoins, as with Kafka's broker.
    import threading

    # Nothing is committed: a partition that moves is read again by its new
    # owner, so count distinct records.
    got, parts, stop = set(), [None, None], threading.Event()

    def member(i):
        # Metadata first: a kafka-python leader that joins before it knows
        # the topic assigns nothing, rejoins at once, and kafka-python 3.0.12
        # can then drop the next assignment it receives (seen 1 run in 6).
        c = consumer(s, "g-" + assignor.name, partition_assignment_strategy=[assignor])
        c.topics()
        c.subscribe(["shared"])
        while not stop.is_set():
            for msgs in c.poll(100).values():
                got.update(int(m.value) for m in msgs)
            parts[i] = sorted(tp.partition for tp in c.assignment())
        c.close()

    threads = [threading.Thread(target=member, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for("60 records and a split", lambda: len(got) >= 60 and parts[0] and parts[1]
                 and sorted(parts[0] + parts[1]) == list(range(6)), timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join()
    p.close()
    pa, pb = parts
    assert sorted(got) == list(range(60)), sorted(got)
    assert pa and pb and sorted(pa + pb) == list(range(6)), (pa, pb)


def test_two_members_with_range():
    with Server("--partitions", "6") as s:
        check_two_members(s, RangePartitionAssignor)


def test_two_members_with_roundrobin():
    with Server("--partitions", "6") as s:
        check_two_members(s, RoundRobinPartitionAssignor)


def test_commit_and_resume():
    with Server() as s:
        p = KafkaProducer(bootstrap_servers=s.bootstrap)
        for i in range(10):
            p.send("r", value=b"%d" % i)
        p.flush()
        c = consumer(s, "resume", "r", max_poll_records=4)
        first = drain(c, 4)[:4]
        c.commit({TopicPartition("r", 0): __import__("kafka").OffsetAndMetadata(4, "", -1)})
        c.close()
        c = consumer(s, "resume", "r")
        rest = drain(c, 6)
        assert c.committed(TopicPartition("r", 0)) == 4
        c.close()
        p.close()
        assert [int(m.value) for m in first] == [0, 1, 2, 3]
        assert [int(m.value) for m in rest] == [4, 5, 6, 7, 8, 9]


VICTIM = r"""
import sys
from kafka import KafkaConsumer
c = KafkaConsumer("k", bootstrap_servers=sys.argv[1], group_id="kill", session_timeout_ms=6000,
                  heartbeat_interval_ms=500, auto_offset_reset="earliest")
while True:
    c.poll(200)
    if c.assignment():
        print("assigned", flush=True)
"""


def test_a_killed_member_loses_its_partitions_after_the_session_timeout():
    with Server("--partitions", "4") as s:
        a = KafkaAdminClient(bootstrap_servers=s.bootstrap)
        a.create_topics([NewTopic("k", 4, 1)])
        a.close()
        victim = subprocess.Popen([sys.executable, "-c", VICTIM, s.bootstrap],
                                  stdout=subprocess.PIPE, text=True)
        wait_for("the first member's assignment", lambda: victim.stdout.readline().strip() == "assigned")
        c = consumer(s, "kill", "k", session_timeout_ms=6000, heartbeat_interval_ms=500)

        def share():
            c.poll(100)
            return sorted(tp.partition for tp in c.assignment())

        wait_for("the survivor's share", lambda: share() not in ([], [0, 1, 2, 3]))
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        t0 = time.time()
        wait_for("all four partitions", lambda: share() == [0, 1, 2, 3], timeout=30)
        waited = time.time() - t0
        c.close()
        assert waited >= 3, f"partitions moved after {waited:.1f} s, before the session timeout"


def test_a_transactional_copy_is_read_back_read_committed():
    with Server("--partitions", "2") as s:
        p = KafkaProducer(bootstrap_servers=s.bootstrap)
        for i in range(30):
            p.send("in", value=b"%d" % i)
        p.flush()
        p.close()
        tp = KafkaProducer(bootstrap_servers=s.bootstrap, transactional_id="kp-copier")
        tp.init_transactions()
        c = consumer(s, "kp-copy", "in", isolation_level="read_committed")
        copied = 0
        deadline = time.time() + 40
        while copied < 30 and time.time() < deadline:
            batch = c.poll(500)
            if not batch:
                continue
            tp.begin_transaction()
            for msgs in batch.values():
                for m in msgs:
                    tp.send("out", value=b"copy-" + m.value)
                    copied += 1
            offsets = {tp_: __import__("kafka").OffsetAndMetadata(c.position(tp_), "", -1)
                       for tp_ in c.assignment()}
            tp.send_offsets_to_transaction(offsets, c.group_metadata())
            tp.commit_transaction()
        tp.begin_transaction()
        tp.send("out", value=b"aborted")
        tp.flush()
        tp.abort_transaction()
        tp.close()
        r = consumer(s, "kp-reader", "out", isolation_level="read_committed")
        values = set()
        deadline = time.time() + 20
        while time.time() < deadline and len(values) < 30:
            for msgs in r.poll(300).values():
                values.update(m.value for m in msgs)
        for _ in range(5):
            for msgs in r.poll(300).values():
                values.update(m.value for m in msgs)
        committed = sum(c.committed(TopicPartition("in", i)) or 0 for i in range(2))
        c.close()
        r.close()
        assert copied == 30
        assert values == {b"copy-%d" % i for i in range(30)}, sorted(values)
        assert committed == 30, committed


if __name__ == "__main__":
    run_tests("kafka-python", dict(globals()))
