#!/usr/bin/env bash
# Quick start: install prerequisites if missing, build, and run `raftgate dev`
# (one node, demo data, admin token printed). Extra arguments go to `raftgate dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The same selection as scripts/test.sh: a narrower one (`-p raftgate-node`) unifies
# build-dependency features differently and rebuilds RocksDB (~10 minutes) from scratch.
cargo build --workspace --all-targets
exec "$CARGO_TARGET_DIR/debug/raftgate" dev "$@"
