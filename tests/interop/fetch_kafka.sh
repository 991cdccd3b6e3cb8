#!/usr/bin/env bash
# Fetches Apache Kafka's jars (kafka_2.13, kafka-server, kafka-tools and
# their dependencies, 4.x, from Maven Central) into target/interop/kafka-libs
# once; later runs reuse them. Used by the interop checks and the server
# benchmark. Needs Java 17 and Maven. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=target/interop
if [ ! -f "$work/kafka-libs/.complete" ]; then
    echo "-- fetching Apache Kafka's jars with Maven"
    rm -rf "$work/kafka-libs"
    mkdir -p "$work"
    (cd tests/interop/kafka && mvn -q -B dependency:copy-dependencies \
        -DoutputDirectory="$PWD/../../../$work/kafka-libs")
    touch "$work/kafka-libs/.complete"
fi
