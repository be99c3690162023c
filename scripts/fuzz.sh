#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (cargo-fuzz, nightly) and runs each for a bounded
# time: scripts/fuzz.sh [SECONDS per target, default 30] [TARGET...].
# Exits non-zero when any target crashes, naming the input that did it.
# Settings (environment): FUZZ_TARGET_DIR (build and scratch dir,
# default ~/.cache/raftgate-fuzz-target), FUZZ_SANITIZER (none|address, default none:
# the crates forbid unsafe code, and libFuzzer itself catches panics, timeouts and
# memory blow-ups), FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT (seconds per input,
# default 10), FUZZ_JOBS (parallel fuzzing processes per target, default 1),
# FUZZ_CODEGEN_UNITS (default 16: a faster build for slightly slower runs).
# See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
all=(route_match path_rewrite admin_json llm_translate sse_parse raft_decode upstream_response)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
dir="${FUZZ_TARGET_DIR:-$HOME/.cache/raftgate-fuzz-target}"
sanitizer="${FUZZ_SANITIZER:-none}"
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is missing: cargo install cargo-fuzz (scripts/test-deps.sh does it)" >&2
  exit 2
fi

# RocksDB's C++ takes ~10 minutes to compile, and the fuzz targets never call it: link
# the library the main (stable) build already compiled, when both lock files pin the
# same librocksdb-sys. The copy under $dir keeps working after `cargo clean`.
rocksdb_version() { grep -A1 '^name = "librocksdb-sys"$' "$1" | sed -n 's/^version = "\(.*\)"$/\1/p'; }
want="$(rocksdb_version fuzz/Cargo.lock)"
lib="$dir/rocksdb-lib/$want"
if [ ! -f "$lib/librocksdb.a" ] && [ "$want" = "$(rocksdb_version Cargo.lock)" ]; then
  main_target="${CARGO_TARGET_DIR:-target}"
  built="$(ls -t "$main_target"/*/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)"
  if [ -n "$built" ]; then
    mkdir -p "$lib"
    cp "$built" "$lib/librocksdb.a.tmp" && mv "$lib/librocksdb.a.tmp" "$lib/librocksdb.a"
  fi
fi
if [ -f "$lib/librocksdb.a" ]; then
  export ROCKSDB_LIB_DIR="$lib" ROCKSDB_STATIC=1
else
  echo "fuzz: no prebuilt librocksdb.a for $want: compiling RocksDB (slow)" >&2
fi

build_one=()
[ ${#targets[@]} -ne 1 ] || build_one=("${targets[0]}")
start=$(date +%s)
cargo +nightly fuzz build --sanitizer "$sanitizer" --debug-assertions --target-dir "$dir" \
  --codegen-units "${FUZZ_CODEGEN_UNITS:-16}" "${build_one[@]}"
echo "fuzz: build took $(( $(date +%s) - start )) s" >&2

triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
bin_dir="$dir/$triple/release"
dict_of() {
  case "$1" in
    route_match | path_rewrite) echo fuzz/dict/route.dict ;;
    admin_json | llm_translate) echo fuzz/dict/json.dict ;;
    sse_parse) echo fuzz/dict/sse.dict ;;
    *) echo "" ;;
  esac
}

failed=()
summary=()
for t in "${targets[@]}"; do
  work="$dir/corpus/$t"
  artifacts="$dir/artifacts/$t"
  log="$dir/logs/$t.log"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  args=(-max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_MB:-2048}"
    -timeout="${FUZZ_TIMEOUT:-10}" -artifact_prefix="$artifacts/" -print_final_stats=1)
  dict="$(dict_of "$t")"
  [ -z "$dict" ] || args+=(-dict="$dict")
  jobs="${FUZZ_JOBS:-1}"
  [ "$jobs" -le 1 ] || args+=(-fork="$jobs")
  echo "fuzz: $t for ${seconds}s" >&2
  # New inputs go to the scratch corpus (first dir); the committed seeds are read only.
  seeds=()
  [ ! -d "fuzz/corpus/$t" ] || seeds=("fuzz/corpus/$t")
  if "$bin_dir/$t" "$work" "${seeds[@]}" "${args[@]}" >"$log" 2>&1; then
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)"
    summary+=("$t: ok, ${runs:-?} runs, ${rate:-?} exec/s, ${cov:-cov: ?}")
  else
    input="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
    failed+=("$t")
    summary+=("$t: CRASH, input ${input:-(none written)}, log $log")
    echo "---- $t: last lines of $log" >&2
    grep -v '^#' "$log" | tail -n 40 >&2 || true
    if [ -n "$input" ]; then
      echo "reproduce: $bin_dir/$t $input  (or: cargo +nightly fuzz run $t $input)" >&2
    fi
  fi
done

printf 'fuzz: %s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]}" >&2
  exit 1
fi
