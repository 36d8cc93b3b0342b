#!/usr/bin/env bash
# Builds the sidecar and the quickstart client, starts the sidecar on the embedded in-memory
# config (configs/config_standalone.json), runs the quickstart against it, then stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
# Build dependencies from Debian: protoc for the build script of etcd-client
# (crates/components/etcd); OpenSSL's headers and pkg-config for librdkafka's TLS and SCRAM
# (crates/components/kafka).
missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing and this user cannot install the Debian packages: ${missing[*]}" >&2
    exit 1
  fi
fi
cargo build --release --locked -p layotto
cargo build --release --locked -p layotto-sdk --example quickstart
LAYOTTO_SECRET_QUICKSTART=s3cr3t ./target/release/layotto start -c configs/config_standalone.json &
sidecar=$!
trap 'kill $sidecar 2>/dev/null || true' EXIT
./target/release/examples/quickstart
