#!/usr/bin/env python3
"""Checks a log with transactions, written by tests/txn_fixture.rs, with
Apache Kafka's own DumpLogSegments (FORMAT.md §10):

1. the data partition's segments (--deep-iteration): every transaction
   marker is a valid control batch with Kafka's endTxnMarker, at the
   expected offset, of the expected producer, one new epoch per
   transaction;
2. the .txnindex files: Kafka's TransactionIndex reads the expected
   aborted transactions (producer, first, last, last stable offset);
3. the .snapshot files: Kafka's ProducerStateManager reads them;
4. __transaction_state (--transaction-log-decoder): Kafka's coordinator
   record schemas decode every state, in the expected order;
5. __consumer_offsets (--offsets-decoder): the offsets committed inside
   transactions are transactional batches Kafka decodes.

Usage: check_kafka_txn.py LOG_DIR EXPECTED_TSV KAFKA_LIBS
"""
import glob
import os
import re
import subprocess
import sys


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def dump(libs, args):
    cmd = ["java", "-cp", os.path.join(libs, "*"),
           "org.apache.kafka.tools.DumpLogSegments"] + args
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = "\n".join(l for l in p.stdout.splitlines() if not l.startswith("SLF4J"))
    if p.returncode != 0:
        fail("DumpLogSegments exited with %d:\n%s" % (p.returncode, out))
    bad = [l for l in out.splitlines()
           if "isvalid: false" in l or "Exception" in l or "Error" in l]
    if bad:
        fail("DumpLogSegments complains:\n" + "\n".join(bad[:10]))
    return out


def files(d, ext):
    return sorted(glob.glob(os.path.join(d, "*." + ext)))


def main():
    log_dir, expected_path, libs = sys.argv[1:4]
    want_markers, want_aborted = [], []
    for line in open(expected_path):
        f = line.rstrip("\n").split("\t")
        if f[0] == "marker":
            want_markers.append((int(f[1]), f[2], int(f[3])))
        elif f[0] == "aborted":
            want_aborted.append(tuple(int(x) for x in f[1:5]))
    if not want_markers or not want_aborted:
        fail("the expected file lists no markers or no aborted transactions")
    data = os.path.join(log_dir, "tx-0")

    # 1. markers
    out = dump(libs, ["--deep-iteration", "--print-data-log",
                      "--files", ",".join(files(data, "log"))])
    batch_re = re.compile(r"^baseOffset: (\d+) .*producerId: (-?\d+) producerEpoch: (-?\d+) .*isTransactional: (\w+) isControl: (\w+)")
    marker_re = re.compile(r"^\| offset: (\d+) .*endTxnMarker: (COMMIT|ABORT) coordinatorEpoch: 0")
    got, last_batch = [], None
    for line in out.splitlines():
        m = batch_re.match(line)
        if m:
            last_batch = m.groups()
            continue
        m = marker_re.match(line)
        if m:
            if last_batch is None or last_batch[4] != "true" or last_batch[3] != "true":
                fail("a marker outside a transactional control batch: " + line)
            got.append((int(m.group(1)), m.group(2), int(last_batch[1]), int(last_batch[2])))
    if [(o, k, p) for o, k, p, _ in got] != want_markers:
        fail("markers: Kafka read %s, expected %s" % (got, want_markers))
    epochs = [e for _, _, _, e in got]
    if epochs != list(range(len(epochs))):
        fail("each transaction should have the next epoch: %s" % epochs)
    print("DumpLogSegments: %d transaction markers (COMMIT/ABORT, producer, epoch) as expected" % len(got))

    # 2. aborted-transaction indexes
    out = dump(libs, ["--files", ",".join(files(data, "txnindex"))])
    idx_re = re.compile(r"^version: 0 producerId: (\d+) firstOffset: (\d+) lastOffset: (\d+) lastStableOffset: (\d+)")
    got = [tuple(int(x) for x in m.groups())
           for m in (idx_re.match(l) for l in out.splitlines()) if m]
    if got != want_aborted:
        fail(".txnindex: Kafka read %s, expected %s" % (got, want_aborted))
    print("DumpLogSegments: %d aborted-transaction index entries as expected" % len(got))

    # 3. producer-state snapshots
    snaps = files(data, "snapshot")
    if len(snaps) < 2:
        fail("expected snapshots from rolls and the close, found %s" % snaps)
    out = dump(libs, ["--files", ",".join(snaps)])
    entries = re.findall(r"producerId: (\d+) producerEpoch: (\d+) .*currentTxnFirstOffset: (\S+) .*lastSequence: (-?\d+) lastOffset: (-?\d+)", out)
    if len(entries) < len(snaps):
        fail("Kafka read too few snapshot entries:\n" + out)
    last = [e for e in entries if e[0] == str(want_markers[-1][2])][-1]
    if last[2] != "OptionalLong.empty" or int(last[1]) != len(want_markers) - 1:
        fail("the close's snapshot should show no open transaction and the last epoch %d: %s" % (len(want_markers) - 1, last))
    print("DumpLogSegments: %d snapshots, %d producer entries read" % (len(snaps), len(entries)))

    # 4. transaction states
    state_dir = os.path.join(log_dir, "__transaction_state-0")
    out = dump(libs, ["--transaction-log-decoder", "--files", ",".join(files(state_dir, "log"))])
    statuses = re.findall(r'"transactionalId":"copier-1"\}\} payload: \{"version":"0","data":\{.*?"transactionStatus":"(\w+)"', out)
    # A commit leaves its decision (PrepareCommit) as the id's state until
    # the next record of the id; the reopen that wrote the expected file
    # completes the last one.
    want = ["Empty"]
    for _, kind, _ in want_markers:
        want.append("PrepareCommit" if kind == "COMMIT" else "CompleteAbort")
    if want_markers[-1][1] == "COMMIT":
        want.append("CompleteCommit")
    if statuses != want:
        fail("__transaction_state: Kafka decoded %s, expected %s" % (statuses, want))
    print("DumpLogSegments --transaction-log-decoder: %d states as expected" % len(statuses))

    # 5. offsets inside transactions
    offsets_dir = os.path.join(log_dir, "__consumer_offsets-0")
    out = dump(libs, ["--offsets-decoder", "--files", ",".join(files(offsets_dir, "log"))])
    txn_batches = len(re.findall(r"isTransactional: true isControl: false", out))
    markers = len(re.findall(r"endTxnMarker: (COMMIT|ABORT)", out))
    commits = len(re.findall(r'"offset":\d+', out))
    # Offsets reach __consumer_offsets at commit (step 2 of the protocol):
    # one transactional batch and one COMMIT marker per committed transaction.
    committed = sum(1 for _, kind, _ in want_markers if kind == "COMMIT")
    if txn_batches != committed or markers != committed or commits < committed:
        fail("__consumer_offsets: %d transactional batches, %d markers, %d offsets; expected %d of each" % (
            txn_batches, markers, commits, committed))
    print("DumpLogSegments --offsets-decoder: %d transactional offset commits, each with its marker" % txn_batches)


if __name__ == "__main__":
    main()
