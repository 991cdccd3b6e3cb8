"""confluent-kafka (librdkafka, PyPI) against `streamlog serve`: admin
create/describe/delete, an idempotent zstd producer, groups with two
assignors, commit and resume, and a member killed with SIGKILL whose
partitions move after its session timeout."""

import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions, NewTopic,
                                  OffsetSpec)

from harness import Server, run_tests, wait_for


def admin(s):
    return AdminClient({"bootstrap.servers": s.bootstrap})


def consumer(s, group, **extra):
    cfg = {
        "bootstrap.servers": s.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        # Pinned as well as left to the default elsewhere: librdkafka says
        # its default will move to the KIP-848 protocol.
        "group.protocol": "classic",
    }
    cfg.update(extra)
    return Consumer(cfg)


def drain(c, want, timeout=30):
    got = []
    deadline = time.time() + timeout
    while len(got) < want and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m)
    return got


def test_admin_create_describe_alter_and_delete():
    with Server("--no-auto-create-topics") as s:
        a = admin(s)
        futures = a.create_topics(
            [NewTopic("orders", num_partitions=3, replication_factor=1,
                      config={"cleanup.policy": "compact", "retention.ms": "60000"})]
        )
        futures["orders"].result(10)
        dup = a.create_topics([NewTopic("orders", num_partitions=1)])["orders"]
        try:
            dup.result(10)
            raise AssertionError("a second create succeeded")
        except KafkaException as e:
            assert e.args[0].name() == "TOPIC_ALREADY_EXISTS", e
        md = a.list_topics(timeout=10)
        assert len(md.topics["orders"].partitions) == 3
        cfg = a.describe_configs([ConfigResource("topic", "orders")])
        values = {k: v.value for k, v in list(cfg.values())[0].result(10).items()}
        assert values["cleanup.policy"] == "compact" and values["retention.ms"] == "60000", values
        a.create_partitions([NewPartitions("orders", 5)])["orders"].result(10)
        assert len(a.list_topics(timeout=10).topics["orders"].partitions) == 5
        a.delete_topics(["orders"])["orders"].result(10)
        assert "orders" not in a.list_topics(timeout=10).topics


def test_list_offsets_and_describe_cluster():
    with Server() as s:
        p = Producer({"bootstrap.servers": s.bootstrap})
        for i, ts in enumerate([1000, 5000, 3000]):
            p.produce("lo", value=b"%d" % i, timestamp=ts)
        assert p.flush(10) == 0
        a = admin(s)
        tp = TopicPartition("lo", 0)
        specs = {
            "earliest": (OffsetSpec.earliest(), 0),
            "latest": (OffsetSpec.latest(), 3),
            "max timestamp": (OffsetSpec.max_timestamp(), 1),
            "by time": (OffsetSpec.for_timestamp(2000), 1),
        }
        for name, (spec, want) in specs.items():
            got = a.list_offsets({tp: spec})[tp].result(10)
            assert got.offset == want, (name, got)
        assert a.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(10).timestamp == 5000
        cluster = a.describe_cluster().result(10)
        assert [f"{n.host}:{n.port}" for n in cluster.nodes] == [s.bootstrap], cluster.nodes
        assert cluster.controller.id == 0


def test_a_static_member_comes_back_to_its_partitions():
    with Server("--partitions", "4") as s:
        a = admin(s)
        a.create_topics([NewTopic("st", num_partitions=4)])["st"].result(10)
        members = [consumer(s, "static", **{"group.instance.id": f"worker-{i}",
                                             "session.timeout.ms": 6000}) for i in range(2)]
        for c in members:
            c.subscribe(["st"])
        wait_for("a split", lambda: all(members_assignment(members, 3)))
        before = members_assignment(members, 1)
        # worker-1 goes away without leaving (static members do not send
        # LeaveGroup) and comes back under the same instance id before its
        # session runs out: it gets the same partitions back.
        members[1].close()
        back = consumer(s, "static", **{"group.instance.id": "worker-1", "session.timeout.ms": 6000})
        back.subscribe(["st"])
        # (Both members poll, as applications do: a returning leader makes
        # the group rebalance, and the other member must rejoin.)
        wait_for("the same partitions",
                 lambda: members_assignment([members[0], back], 3) == before)
        members[0].close()
        back.close()


def test_idempotent_zstd_producer_is_read_back_in_order():
    with Server("--partitions", "2") as s:
        p = Producer({"bootstrap.servers": s.bootstrap, "enable.idempotence": True,
                      "compression.type": "zstd", "linger.ms": 5})
        for i in range(2000):
            p.produce("idem", key=b"k%d" % (i % 7), value=b"v%d" % i, headers=[("h", b"%d" % i)])
        assert p.flush(30) == 0
        c = consumer(s, "reader")
        c.subscribe(["idem"])
        got = drain(c, 2000)
        c.close()
        assert len(got) == 2000
        by_key = {}
        for m in got:
            by_key.setdefault(m.key(), []).append(int(m.value()[1:]))
            assert m.headers() == [("h", m.value()[1:])]
        for vals in by_key.values():
            assert vals == sorted(vals), "a key's records out of order"


def members_assignment(consumers, rounds=40):
    for _ in range(rounds):
        for c in consumers:
            c.poll(0.1)
    return [sorted(tp.partition for tp in c.assignment()) for c in consumers]


def check_two_members_share(s, strategy):
    p = Producer({"bootstrap.servers": s.bootstrap})
    for i in range(60):
        p.produce("shared", value=b"%d" % i, partition=i % 6)
    p.flush(10)
    a, b = consumer(s, "g-" + strategy, **{"partition.assignment.strategy": strategy}), \
        consumer(s, "g-" + strategy, **{"partition.assignment.strategy": strategy})
    a.subscribe(["shared"])
    b.subscribe(["shared"])
    # Nothing is committed, so a partition that moves in a rebalance is read
    # again from the start by its new owner: count distinct records.
    got = set()
    deadline = time.time() + 30
    while time.time() < deadline and len(got) < 60:
        for c in (a, b):
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                got.add(int(m.value()))
    pa, pb = members_assignment([a, b], rounds=5)
    a.close()
    b.close()
    assert sorted(got) == list(range(60)), sorted(got)
    assert pa and pb and not set(pa) & set(pb) and sorted(pa + pb) == list(range(6)), (pa, pb)


def test_two_members_share_partitions_with_range():
    with Server("--partitions", "6") as s:
        check_two_members_share(s, "range")


def test_two_members_share_partitions_with_cooperative_sticky():
    with Server("--partitions", "6") as s:
        check_two_members_share(s, "cooperative-sticky")


def test_commit_and_resume():
    with Server() as s:
        p = Producer({"bootstrap.servers": s.bootstrap})
        for i in range(10):
            p.produce("r", value=b"%d" % i)
        p.flush(10)
        c = consumer(s, "resume")
        c.subscribe(["r"])
        first = drain(c, 4)
        c.commit(message=first[-1], asynchronous=False)
        c.close()
        c = consumer(s, "resume")
        c.subscribe(["r"])
        rest = drain(c, 6)
        committed = c.committed([TopicPartition("r", 0)], timeout=10)[0].offset
        c.close()
        assert [int(m.value()) for m in first] == [0, 1, 2, 3]
        assert [int(m.value()) for m in rest] == [4, 5, 6, 7, 8, 9]
        assert committed == 4


VICTIM = r"""
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "kill", "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest"})
c.subscribe(["k"])
while True:
    c.poll(0.2)
    if c.assignment():
        print("assigned", flush=True)
"""


def test_a_killed_member_loses_its_partitions_after_the_session_timeout():
    with Server("--partitions", "4") as s:
        # Consumers do not create topics (librdkafka's default).
        a = admin(s)
        a.create_topics([NewTopic("k", num_partitions=4)])["k"].result(10)
        victim = subprocess.Popen([sys.executable, "-c", VICTIM, s.bootstrap],
                                  stdout=subprocess.PIPE, text=True)
        wait_for("the first member's assignment", lambda: victim.stdout.readline().strip() == "assigned")
        c = consumer(s, "kill", **{"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        c.subscribe(["k"])
        wait_for("the survivor's share", lambda: members_assignment([c], 5)[0] not in ([], [0, 1, 2, 3]))
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        t0 = time.time()
        wait_for("all four partitions", lambda: members_assignment([c], 5)[0] == [0, 1, 2, 3], timeout=30)
        waited = time.time() - t0
        c.close()
        assert waited >= 3, f"partitions moved after {waited:.1f} s, before the session timeout"


def test_a_transactional_copy_is_read_back_read_committed():
    with Server("--partitions", "2") as s:
        p = Producer({"bootstrap.servers": s.bootstrap})
        for i in range(40):
            p.produce("in", value=b"%d" % i)
        assert p.flush(10) == 0
        tp = Producer({"bootstrap.servers": s.bootstrap, "transactional.id": "copier"})
        tp.init_transactions(10)
        c = consumer(s, "copy", **{"isolation.level": "read_committed"})
        c.subscribe(["in"])
        copied = 0
        deadline = time.time() + 30
        while copied < 40 and time.time() < deadline:
            msgs = [m for m in c.consume(8, 0.5) if m.error() is None]
            if not msgs:
                continue
            tp.begin_transaction()
            for m in msgs:
                tp.produce("out", value=b"copy-" + m.value())
            tp.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata())
            tp.commit_transaction(10)
            copied += len(msgs)
        # One aborted transaction, and one left open by a producer that is
        # then fenced by a new instance with the same id.
        tp.begin_transaction()
        tp.produce("out", value=b"aborted")
        tp.flush(10)
        tp.abort_transaction(10)
        tp.begin_transaction()
        tp.produce("out", value=b"left open")
        tp.flush(10)
        again = Producer({"bootstrap.servers": s.bootstrap, "transactional.id": "copier"})
        again.init_transactions(10)
        r = consumer(s, "reader", **{"isolation.level": "read_committed"})
        r.subscribe(["out"])
        values = set()
        deadline = time.time() + 20
        while time.time() < deadline and len(values) < 40:
            m = r.poll(0.3)
            if m is not None and m.error() is None:
                values.add(m.value())
        for _ in range(5):
            m = r.poll(0.3)
            if m is not None and m.error() is None:
                values.add(m.value())
        committed = c.committed([TopicPartition("in", 0), TopicPartition("in", 1)], 10)
        c.close()
        r.close()
        assert copied == 40
        assert values == {b"copy-%d" % i for i in range(40)}, sorted(values)
        # A partition that got no input has nothing committed (-1001).
        assert sum(max(tp_.offset, 0) for tp_ in committed) == 40, committed


if __name__ == "__main__":
    run_tests("confluent-kafka", dict(globals()))
