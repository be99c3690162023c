#!/usr/bin/env bash
# Installs what building Raftgate needs on Debian/Ubuntu, if missing: a C/C++ toolchain
# and libclang (RocksDB is compiled from source by the rocksdb crate), and Rust.
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
# clang-sys needs libclang itself; libclang-cpp (present on some images) is not enough.
if ! compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null \
  && ! compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null; then
  need_apt+=(libclang-dev clang)
fi
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: Rust is missing; install it with rustup (https://rustup.rs) and re-run" >&2
    exit 1
  fi
fi

# One build cache shared by every checkout on this machine: RocksDB alone takes ~10
# minutes to compile from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/raftgate-target}"
mkdir -p "$CARGO_TARGET_DIR"
