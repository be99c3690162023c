#!/usr/bin/env bash
# Admin-write benchmark: builds the release binaries, starts a 3-node loopback cluster,
# and measures admin-write throughput and latency (1 and 64 clients; random node, leader,
# followers). Extra arguments go to raftgate-bench-admin, e.g. --duration-secs 5.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"

cd "$root"
cargo build --release -p raftgate-node -p raftgate-chaos
export RAFTGATE_BIN="$target/release/raftgate"
exec "$target/release/raftgate-bench-admin" --bin "$RAFTGATE_BIN" "$@"
