#!/usr/bin/env bash
# The official Dapr JavaScript SDK (@dapr/dapr from npm, unmodified, version pinned in
# package-lock.json) against layotto started like daprd. Needs Node.js >= 20 with npm, and the
# layotto binary: $LAYOTTO_BIN, else target/debug/layotto (`cargo build -p layotto`).
set -euo pipefail
cd "$(dirname "$0")"
repo="$(cd ../../.. && pwd)"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is missing: install the Debian packages nodejs and npm (apt-get install nodejs npm)" >&2
    exit 1
  fi
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old: the tests need Node.js >= 20 (node:test)" >&2
  exit 1
fi

bin="${LAYOTTO_BIN:-$repo/target/debug/layotto}"
if [ ! -x "$bin" ]; then
  echo "$bin not built: run \`cargo build -p layotto\` first or set LAYOTTO_BIN" >&2
  exit 1
fi
export LAYOTTO_BIN="$bin"

npm ci --no-audit --no-fund --loglevel=error >/dev/null
# Explicit files rather than a directory: how `node --test DIR` expands differs between Node
# versions.
exec node --test --test-reporter=spec test/*.test.mjs
