#!/usr/bin/env bash
# What the test suite needs beyond the build (sourced by scripts/test.sh): the official
# OpenAI and Anthropic Python SDKs in a venv (the LLM compatibility tests run them as
# clients), iptables (the quota tests and the chaos suite cut nodes off with it), and
# libfaketime (the chaos suite's clock jump). Idempotent.
set -euo pipefail

venv="${RAFTGATE_VENV:-$HOME/.cache/raftgate-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai, anthropic' 2>/dev/null; then
  if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "test-deps: installing python3-venv" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv python3-pip >/dev/null
  fi
  echo "test-deps: creating $venv with the openai and anthropic SDKs (PyPI)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'openai>=1.40' 'anthropic>=0.34'
fi
export RAFTGATE_PYTHON="$venv/bin/python"

if ! command -v iptables >/dev/null 2>&1; then
  echo "test-deps: installing iptables" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq iptables >/dev/null
fi

if [ ! -f /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]; then
  echo "test-deps: installing libfaketime" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libfaketime >/dev/null
fi

# The web console's browser test (chaos-tests/tests/console.rs): headless Chromium and
# its WebDriver from Debian, and the selenium client in the venv.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "test-deps: installing chromium and chromium-driver" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  echo "test-deps: installing selenium (PyPI) into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check 'selenium>=4.20'
fi

# scripts/deploy-test.sh: systemd-analyze, debootstrap (a rootfs to run the units under
# systemd in a container), HAProxy (config check, and the load balancer's CI image),
# nginx with its stream module (config check), jq, and kubernetes-validate (manifest
# schemas, bundled with it) in the venv.
deploy_apt=()
command -v systemd-analyze >/dev/null 2>&1 || deploy_apt+=(systemd)
command -v haproxy >/dev/null 2>&1 || deploy_apt+=(haproxy)
command -v nginx >/dev/null 2>&1 || deploy_apt+=(nginx-light)
[ -e /etc/nginx/modules-enabled/50-mod-stream.conf ] || deploy_apt+=(libnginx-mod-stream)
command -v jq >/dev/null 2>&1 || deploy_apt+=(jq)
command -v debootstrap >/dev/null 2>&1 || deploy_apt+=(debootstrap)
if [ ${#deploy_apt[@]} -gt 0 ]; then
  echo "test-deps: installing ${deploy_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${deploy_apt[@]}" >/dev/null
fi
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "test-deps: installing kubernetes-validate (PyPI) into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check 'kubernetes-validate>=1.30'
fi

# scripts/schemathesis.sh: schemathesis (PyPI, pinned: its checks and CLI flags change
# between releases) fuzzes the admin API from its OpenAPI document.
schemathesis_version=4.32.5
if [ "$("$venv/bin/st" --version 2>/dev/null | awk '{print $NF}')" != "$schemathesis_version" ]; then
  echo "test-deps: installing schemathesis $schemathesis_version (PyPI) into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$schemathesis_version"
fi
export RAFTGATE_SCHEMATHESIS="$venv/bin/st"

# scripts/fuzz.sh: the nightly toolchain and cargo-fuzz (crates.io) build the fuzz
# targets in fuzz/ (docs/fuzzing.md).
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "test-deps: installing the nightly Rust toolchain (rustup)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "test-deps: installing cargo-fuzz (crates.io)" >&2
  cargo install cargo-fuzz --locked
fi

# scripts/supply-chain.sh: cargo-deny and cargo-audit (crates.io, pinned, built once into
# ~/.cargo/bin; about 2.5 and 4 minutes on 2 cores, so CI should cache ~/.cargo/bin).
# cargo-audit only reads a local advisory database, so it is built only when one is given.
tools=("deny 0.20.2")
[ -z "${RAFTGATE_ADVISORY_DB:-}" ] || tools+=("audit 0.22.2")
for tool in "${tools[@]}"; do
  read -r sub version <<<"$tool"
  if [ "$(cargo "$sub" --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
    echo "test-deps: installing cargo-$sub $version (crates.io)" >&2
    CARGO_TARGET_DIR="$HOME/.cache/raftgate-tools-target" cargo install --locked "cargo-$sub" --version "$version"
  fi
done
