#!/usr/bin/env bash
# Real Kafka clients against `streamlog serve` on loopback (issue 18's
# client matrix). Installs each client once per run: kcat from Debian,
# confluent-kafka and kafka-python from PyPI, KafkaJS from npm, franz-go
# from the Go module proxy, and Apache Kafka's Java client from Maven
# Central (the jars kafka_format.sh fetched). Each check starts its own
# server on a free port and stops it with SIGTERM. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
work=target/interop
here=tests/interop/server

if ! command -v kcat >/dev/null; then
    echo "-- installing kcat from Debian"
    apt-get install -y -q kcat >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q kcat >/dev/null; }
fi
if [ ! -x "$work/venv/bin/python" ] ||
    ! "$work/venv/bin/python" -c "import kafka, zstandard, confluent_kafka" 2>/dev/null; then
    echo "-- installing confluent-kafka, kafka-python and zstandard from PyPI"
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install -q -r tests/interop/requirements.txt
fi
bash tests/interop/fetch_kafka.sh
echo "-- installing KafkaJS from npm"
(cd "$here/kafkajs" && npm ci --no-audit --no-fund --silent)
echo "-- building the streamlog command"
cargo build -q -p streamlog-cli
export STREAMLOG_BIN="$PWD/target/debug/streamlog"

# Starts `streamlog serve` on a free port for a client that is not Python;
# sets $addr and $pid.
start() {
    dir=$(mktemp -d)
    coproc SERVE { exec "$STREAMLOG_BIN" serve "$dir" --listen 127.0.0.1:0; }
    pid=$SERVE_PID
    read -r line <&"${SERVE[0]}"
    addr=${line#listening on }
}
stop() {
    kill -TERM "$pid"
    wait "$pid"
    "$STREAMLOG_BIN" verify "$dir" >/dev/null
    rm -rf "$dir"
}

status=0
run() {
    local name=$1
    shift
    echo "-- $name"
    if ! "$@"; then
        echo "FAILED: $name"
        status=1
    fi
}

run kcat python3 "$here/check_kcat.py"
run confluent-kafka "$work/venv/bin/python" "$here/check_confluent.py"
run kafka-python "$work/venv/bin/python" "$here/check_kafka_python.py"
run "README examples" "$work/venv/bin/python" "$here/check_readme.py"

java_check() {
    local classes
    classes=$(mktemp -d)
    javac -Xlint:-removal -d "$classes" -cp "$work/kafka-libs/*" "$here/java/CheckJavaClient.java"
    start
    java -cp "$classes:$work/kafka-libs/*" CheckJavaClient "$addr" 2>&1 | grep -E "^(PASS|FAIL)"
    local rc=${PIPESTATUS[0]}
    stop
    rm -rf "$classes"
    return "$rc"
}
run "Java client (kafka-clients 4.x)" java_check

franz_check() {
    start
    (cd "$here/franz" && go run . "$addr")
    local rc=$?
    stop
    return "$rc"
}
run franz-go franz_check

kafkajs_check() {
    start
    node "$here/kafkajs/check.js" "$addr"
    local rc=$?
    stop
    return "$rc"
}
run KafkaJS kafkajs_check

exit $status
