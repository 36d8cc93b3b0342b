#!/usr/bin/env bash
# Builds the sidecar and the quickstart client, starts the sidecar on the embedded in-memory
# config (configs/config_standalone.json), runs the quickstart against it, then stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p layotto
cargo build --release --locked -p layotto-sdk --example quickstart
LAYOTTO_SECRET_QUICKSTART=s3cr3t ./target/release/layotto start -c configs/config_standalone.json &
sidecar=$!
trap 'kill $sidecar 2>/dev/null || true' EXIT
./target/release/examples/quickstart
