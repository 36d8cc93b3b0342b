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
