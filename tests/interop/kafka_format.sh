#!/usr/bin/env bash
# The independent check that streamlog's bytes are Kafka's (FORMAT.md):
# fetches Apache Kafka's jars (Maven Central) and kafka-python (PyPI) once
# per run, writes a fresh copy of the v2 fixture with this build, and
# decodes it and the committed one with both (check_kafka_format.py).
# Needs Java 17, Maven and Python 3. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=target/interop
mkdir -p "$work"

bash tests/interop/fetch_kafka.sh
if [ ! -x "$work/venv/bin/python" ] || ! "$work/venv/bin/python" -c "import kafka, zstandard" 2>/dev/null; then
    echo "-- installing kafka-python (and zstandard, its zstd codec) from PyPI"
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install -q -r tests/interop/requirements.txt
fi

echo "-- writing a fresh v2 fixture with this build"
rm -rf "$work/fresh"
mkdir -p "$work/fresh"
STREAMLOG_FIXTURE_OUT="$PWD/$work/fresh" \
    cargo test -q --test fixtures -- --ignored generate_v2 >/dev/null
# The same build must write the same records as the committed fixture.
diff tests/fixtures/v2-records.tsv "$work/fresh/v2-records.tsv"
diff tests/fixtures/v2-offsets.tsv "$work/fresh/v2-offsets.tsv"

for dir in "$work/fresh" tests/fixtures; do
    echo "-- checking $dir/v2 with Kafka's DumpLogSegments and kafka-python"
    "$work/venv/bin/python" tests/interop/check_kafka_format.py \
        "$dir/v2" "$dir/v2-records.tsv" "$dir/v2-offsets.tsv" "$work/kafka-libs"
done

echo "-- writing a log with transactions with this build"
rm -rf "$work/txn"
mkdir -p "$work/txn"
STREAMLOG_TXN_LOG_OUT="$PWD/$work/txn" \
    cargo test -q --test txn_fixture -- --ignored generate_txn_log >/dev/null
echo "-- checking its markers, .txnindex, .snapshot, __transaction_state and offsets with Kafka's DumpLogSegments"
"$work/venv/bin/python" tests/interop/check_kafka_txn.py \
    "$work/txn/log" "$work/txn/expected.tsv" "$work/kafka-libs"
