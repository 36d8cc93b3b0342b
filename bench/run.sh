#!/usr/bin/env bash
# Builds the release sidecar and benchmark, runs every scenario and rewrites bench/REPORT.md.
# Extra arguments go to layotto-bench (e.g. --concurrency 64 --value-size 1024).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null; then
  echo "bench: redis-server is missing (Debian package redis-server)" >&2
  exit 1
fi
cargo build --release --locked -p layotto -p layotto-bench
./target/release/layotto-bench --bin target/release/layotto --report bench/REPORT.md "$@"
# Dapr's own sidecar, built once by the test harness (build-peers) and cached by version.
daprd="$HOME/.cache/layotto-rs/peers/daprd-v1.14.0/daprd"
[ -x "$daprd" ] || cargo run -q --release --locked -p layotto-test-support --bin build-peers
# State and pub/sub through Dapr's gRPC API, beside daprd and the floor (tonic + one Redis GET).
./target/release/layotto-bench --versus --daprd "$daprd" --bin target/release/layotto \
  --report bench/REPORT.md
# Service invocation beside daprd.
./target/release/layotto-bench --invocation --daprd "$daprd" --bin target/release/layotto \
  --report bench/REPORT.md --fixed-seconds 10
# Publish-and-deliver per broker (NATS JetStream, Kafka, RabbitMQ, Mosquitto; their servers
# as the test suite installs and starts them).
./target/release/layotto-bench --brokers --bin target/release/layotto --report bench/REPORT.md
# Each broker killed and restarted under 10,000 messages to a consumer group of two members.
./target/release/layotto-bench --broker-faults --bin target/release/layotto --report bench/REPORT.md
