#!/usr/bin/env bash
# Builds the release sidecar and rewrites bench/REPORT.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p layotto -p layotto-bench --locked
./target/release/layotto-bench --bin target/release/layotto --runs 30 --report bench/REPORT.md
