#!/usr/bin/env python3
"""Checks that a streamlog log directory is Kafka's bytes, with two decoders
that share no code with streamlog:

1. Apache Kafka's own DumpLogSegments (`kafka-dump-log.sh`), run on every
   segment with --deep-iteration --print-data-log, and on every index and
   time index, with and without --index-sanity-check (without it, the tool
   verifies each entry against the log, as Kafka itself would trust it);
2. kafka-python's record batch reader (MemoryRecords / DefaultRecordBatch),
   which checks each batch's CRC-32C and decodes every record.

Every record both decoders find is compared with the manifest of what was
written (tests/fixtures/v2-records.tsv: partition directory, offset,
timestamp, key, value and headers, bytes in hex, null as "-"). Any CRC
complaint, index complaint, missing, extra or different record fails.

The committed group offsets in `__consumer_offsets` are decoded with
Kafka's offsets decoder (--offsets-decoder) and compared with OFFSETS
(group, topic, partition, offset, metadata per line).

Usage: check_kafka_format.py LOG_DIR MANIFEST OFFSETS KAFKA_LIBS_DIR
"""

import json

import os
import re
import subprocess
import sys

from kafka.record.memory_records import MemoryRecords

INTERNAL = "__consumer_offsets"


def unhex(s):
    return None if s == "-" else bytes.fromhex(s)


def read_manifest(path):
    want = {}
    with open(path) as f:
        for line in f:
            part, offset, ts, key, value, headers = line.rstrip("\n").split("\t")
            hs = []
            if headers:
                for h in headers.split(","):
                    name, v = h.split("=", 1)
                    hs.append((name, unhex(v)))
            want[(part, int(offset))] = (int(ts), unhex(key), unhex(value), hs)
    return want


def segment_files(log_dir):
    out = {}
    for part in sorted(os.listdir(log_dir)):
        pdir = os.path.join(log_dir, part)
        if not os.path.isdir(pdir):
            continue
        names = sorted(os.listdir(pdir))
        out[part] = [os.path.join(pdir, n) for n in names
                     if n.endswith((".log", ".index", ".timeindex"))]
    return out


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def dump(libs, args):
    cmd = ["java", "-cp", os.path.join(libs, "*"),
           "org.apache.kafka.tools.DumpLogSegments"] + args
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = "\n".join(l for l in (p.stdout + p.stderr).splitlines()
                    if not l.startswith("SLF4J"))
    if p.returncode != 0:
        fail("DumpLogSegments exited with %d:\n%s" % (p.returncode, out))
    return out


# Anything DumpLogSegments says when an index or batch is not right.
# ("Non-consecutive offsets" is not among them: the tool counts from -1 in
# every file, so it reports every segment whose base offset is not 0, and
# every compaction gap; the record-for-record comparison with the manifest
# below is the exact check of which offsets exist.)
COMPLAINTS = re.compile(
    r"Mismatches in|mismatch|out of order|not found|"
    r"isvalid: false|Exception|Error|corrupt|invalid", re.IGNORECASE)

RECORD = re.compile(
    r"^\| offset: (\d+) CreateTime: (-?\d+) keySize: (-?\d+) valueSize: (-?\d+) "
    r"sequence: (-?\d+) headerKeys: \[(.*?)\](?: key: (.*?))?(?: payload: (.*))?$")


def check_with_kafka(libs, files, want):
    logs = [f for fs in files.values() for f in fs if f.endswith(".log")]
    indexes = [f for fs in files.values() for f in fs if not f.endswith(".log")]
    out = dump(libs, ["--deep-iteration", "--print-data-log", "--files", ",".join(logs)])
    bad = [l for l in out.splitlines() if COMPLAINTS.search(l) and not RECORD.match(l)]
    if bad:
        fail("DumpLogSegments complains about the segments:\n" + "\n".join(bad[:20]))
    seen = {}
    part = None
    batches = 0
    for line in out.splitlines():
        if line.startswith("Dumping "):
            part = os.path.basename(os.path.dirname(line[len("Dumping "):]))
            continue
        if line.startswith("baseOffset:"):
            batches += 1
            if "magic: 2" not in line or "isvalid: true" not in line:
                fail("not a valid magic-2 batch: " + line)
            continue
        m = RECORD.match(line)
        if not m:
            continue
        offset, ts, ksize, vsize = (int(m.group(i)) for i in (1, 2, 3, 4))
        hkeys = [h.strip() for h in m.group(6).split(",") if h.strip()]
        seen[(part, offset)] = True
        if part.startswith(INTERNAL):
            continue
        if (part, offset) not in want:
            fail("Kafka found a record the manifest lacks: %s@%d" % (part, offset))
        wts, wkey, wvalue, wheaders = want[(part, offset)]
        got = (ts, ksize, vsize, hkeys)
        exp = (wts, -1 if wkey is None else len(wkey), -1 if wvalue is None else len(wvalue),
               [h for h, _ in wheaders])
        if got != exp:
            fail("%s@%d: Kafka reads %r, manifest %r" % (part, offset, got, exp))
        # Keys and values are printed as strings when they are text.
        for name, g, w in (("key", m.group(7), wkey), ("payload", m.group(8), wvalue)):
            if w is not None and g is not None:
                try:
                    text = w.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                if g != text:
                    fail("%s@%d: Kafka's %s %r, manifest %r" % (part, offset, name, g, text))
    missing = [k for k in want if k not in seen]
    if missing:
        fail("Kafka does not find %d manifest records, e.g. %r" % (len(missing), missing[:3]))
    # Indexes: sanity (sizes, entry counts) and verification against the log.
    out = dump(libs, ["--index-sanity-check", "--files", ",".join(indexes)])
    # An index without entries is reported as empty rather than checked.
    passed = out.count("passed sanity check") + out.count(" is empty.")
    if passed != len(indexes):
        fail("only %d of %d indexes passed Kafka's sanity check:\n%s" % (passed, len(indexes), out))
    out = dump(libs, ["--files", ",".join(indexes)])
    bad = [l for l in out.splitlines() if COMPLAINTS.search(l)]
    if bad:
        fail("DumpLogSegments complains about the indexes:\n" + "\n".join(bad[:20]))
    entries = sum(1 for l in out.splitlines() if l.startswith(("offset:", "timestamp:")))
    print("DumpLogSegments: %d segments, %d batches, %d records, %d index files (%d entries) verified"
          % (len(logs), batches, len(seen), len(indexes), entries))
    return out


def check_with_kafka_python(files, want):
    seen = set()
    batches = 0
    for part, fs in files.items():
        for f in fs:
            if not f.endswith(".log"):
                continue
            data = open(f, "rb").read()
            records = MemoryRecords(data)
            while True:
                batch = records.next_batch()
                if batch is None:
                    break
                batches += 1
                if batch.magic != 2:
                    fail("%s: a batch of magic %d" % (f, batch.magic))
                if not batch.validate_crc():
                    fail("%s: kafka-python finds a bad CRC at offset %d" % (f, batch.base_offset))
                for r in batch:
                    key = (part, r.offset)
                    seen.add(key)
                    if part.startswith(INTERNAL):
                        continue
                    if key not in want:
                        fail("kafka-python found a record the manifest lacks: %s@%d" % key)
                    got = (r.timestamp, r.key, r.value, [(k, v) for k, v in r.headers])
                    if got != want[key]:
                        fail("%s@%d: kafka-python reads %r, manifest %r" % (part, r.offset, got, want[key]))
            if records.valid_bytes() != len(data):
                fail("%s: bytes after the last whole batch" % f)
    missing = [k for k in want if k not in seen]
    if missing:
        fail("kafka-python does not find %d manifest records, e.g. %r" % (len(missing), missing[:3]))
    print("kafka-python: %d batches, %d records decoded, CRCs valid, all match the manifest"
          % (batches, len(seen)))


def check_offsets_with_kafka(libs, files, offsets_path):
    want = set()
    with open(offsets_path) as f:
        for line in f:
            group, topic, part, offset, metadata = line.rstrip("\n").split("\t")
            want.add((group, topic, int(part), int(offset), metadata))
    logs = [f for p, fs in files.items() if p.startswith(INTERNAL) for f in fs if f.endswith(".log")]
    out = dump(libs, ["--offsets-decoder", "--files", ",".join(logs)])
    latest = {}
    for line in out.splitlines():
        m = re.match(r"^\| offset: (\d+) .* key: (\{.*\}) payload: (\{.*\})$", line)
        if not m:
            continue
        key, value = json.loads(m.group(2)), json.loads(m.group(3))
        if key.get("type") != "1":
            fail("an offsets record Kafka does not read as an offset commit: " + line)
        k = key["data"]
        v = value["data"]
        latest[(k["group"], k["topic"], k["partition"])] = (v["offset"], v["metadata"])
    got = {(g, t, p, o, md) for (g, t, p), (o, md) in latest.items()}
    if got != want:
        fail("Kafka's offsets decoder reads %r, committed %r" % (sorted(got), sorted(want)))
    print("Kafka's offsets decoder: %d committed offsets read back" % len(got))


def main():
    log_dir, manifest, offsets, libs = sys.argv[1:5]
    want = read_manifest(manifest)
    files = segment_files(log_dir)
    out = check_with_kafka(libs, files, want)
    check_with_kafka_python(files, want)
    check_offsets_with_kafka(libs, files, offsets)
    sample = os.path.join(log_dir, "events-0", "00000000000000000000.log")
    head = dump(libs, ["--deep-iteration", "--print-data-log", "--files", sample])
    print("first lines of DumpLogSegments for %s:" % os.path.relpath(sample, log_dir))
    print("\n".join(head.splitlines()[:8]))
    print("OK: %d records are Kafka's bytes" % len(want))


if __name__ == "__main__":
    main()
