#!/usr/bin/env bash
# Quick start: install prerequisites if missing, build, and run `raftgate dev`
# (one node, demo data, admin token printed). Extra arguments go to `raftgate dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build -p raftgate-node
exec "$CARGO_TARGET_DIR/debug/raftgate" dev "$@"
