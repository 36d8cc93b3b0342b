#!/usr/bin/env bash
# Builds the sidecar and the quickstart client, starts the sidecar on the embedded in-memory
# config (configs/config_standalone.json), runs the quickstart against it, then stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
# The build script of etcd-client (crates/components/etcd) runs protoc: Debian's
# protobuf-compiler.
if ! command -v protoc >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
  else
    echo "protoc is missing and this user cannot install the Debian package protobuf-compiler" >&2
    exit 1
  fi
fi
cargo build --release --locked -p layotto
cargo build --release --locked -p layotto-sdk --example quickstart
LAYOTTO_SECRET_QUICKSTART=s3cr3t ./target/release/layotto start -c configs/config_standalone.json &
sidecar=$!
trap 'kill $sidecar 2>/dev/null || true' EXIT
./target/release/examples/quickstart
