#!/usr/bin/env bash
# The project's test command (README and CI): formatting, lints, then every test —
# unit tests, openraft's storage suite, multi-process cluster tests on loopback — and
# the chaos suite's reduced sets (chaos-tests/README.md) on processes and containers, and
# the deployment artifacts (scripts/deploy-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/test-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# Licenses, duplicate versions, sources (cargo-deny, deny.toml); advisories only with a
# local RustSec database in RAFTGATE_ADVISORY_DB (docs/supply-chain.md).
scripts/supply-chain.sh
# The cluster tests drive the real binary; build it first so they find it. Every cargo
# command here selects the whole workspace with all targets: a narrower selection
# unifies build-dependency features differently and makes cargo rebuild RocksDB.
cargo build --workspace --all-targets
export RAFTGATE_BIN="$CARGO_TARGET_DIR/debug/raftgate"
cargo test --workspace -- --test-threads 2

# The admin API fuzzed from its OpenAPI document by schemathesis on a one-node cluster:
# no 5xx, answers as documented, no call without a token (docs/admin-api.md).
scripts/schemathesis.sh

# The fuzz targets (fuzz/, nightly and cargo-fuzz; docs/fuzzing.md): a short bounded run
# of each from the committed seeds; any crash fails the suite and names its input.
scripts/fuzz.sh "${RAFTGATE_FUZZ_SECONDS:-20}"

# The chaos suite's reduced sets, with a fixed seed so a failure replays exactly. The
# full set is `raftgate-chaos run --scenarios full` (chaos-tests/README.md).
chaos="$CARGO_TARGET_DIR/debug/raftgate-chaos"
"$chaos" run --backend process --scenarios ci --seed 1 --report "$CARGO_TARGET_DIR/chaos-report/process"
if command -v docker >/dev/null 2>&1; then
  "$chaos" run --backend docker --scenarios ci-docker --seed 1 --report "$CARGO_TARGET_DIR/chaos-report/docker"
  # deploy/: systemd units, Kubernetes manifests, load balancer configs and the
  # docker-compose cluster behind HAProxy, for real (scripts/deploy-test.sh).
  scripts/deploy-test.sh
else
  echo "test: docker is not installed: the chaos suite's Docker set and scripts/deploy-test.sh did not run" >&2
fi
