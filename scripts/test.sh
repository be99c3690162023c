#!/usr/bin/env bash
# The project's test command (README and CI): formatting, lints, then every test —
# unit tests, openraft's storage suite, and multi-process cluster tests on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/test-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The cluster tests drive the real binary; build it first so they find it. Every cargo
# command here selects the whole workspace with all targets: a narrower selection
# unifies build-dependency features differently and makes cargo rebuild RocksDB.
cargo build --workspace --all-targets
export RAFTGATE_BIN="$CARGO_TARGET_DIR/debug/raftgate"
cargo test --workspace -- --test-threads 2
