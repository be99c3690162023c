#!/usr/bin/env bash
# Proxy overhead benchmark: the same upstream (raftgate-upstream, /bench) and the same
# load tool (wrk) against (1) the upstream directly, (2) nginx as reverse proxy,
# (3) raftgate with no policy, (4) raftgate with key auth + metrics + access log.
# Prints req/s, p50 and p99 per system, the ratio to nginx, and the p99 latency added
# at moderate load. Not a test: nothing fails on a number. See bench/README.md.
#
# Environment: DURATION (10) seconds per measured run, ROUNDS (1) repetitions of the
# whole sequence (the report shows each row's median round), CONNS (64) connections of the
# throughput run, LOW_CONNS (4) of the moderate-load run, LOW_PACE_MS (0; N: each LOW_CONNS
# connection waits a random 0..2N ms before each request, so the offered load is about
# LOW_CONNS / N requests per ms whatever the proxy's speed), WARMUP (3) seconds,
# SYSTEMS (direct,nginx,raftgate,raftgate-auth), BUILD (1; 0 uses existing binaries),
# PROXY_CPU (0), LOAD_CPU (1), KEEP_WORK (0; 1 keeps the temp dir with logs and wrk output),
# NODE_ENV (extra KEY=VALUE words for every raftgate node, e.g. "RAFTGATE_CALL_LOG=false").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
target="${CARGO_TARGET_DIR:-$root/target}"

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-1}"
CONNS="${CONNS:-64}"
LOW_CONNS="${LOW_CONNS:-4}"
LOW_PACE_MS="${LOW_PACE_MS:-0}"
WARMUP="${WARMUP:-3}"
SYSTEMS="${SYSTEMS:-direct,nginx,raftgate,raftgate-auth}"
BUILD="${BUILD:-1}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
KEEP_WORK="${KEEP_WORK:-0}"

log() { printf '[proxy-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
wants() { [[ ",$SYSTEMS," == *",$1,"* ]]; }

for v in DURATION ROUNDS CONNS LOW_CONNS LOW_PACE_MS WARMUP PROXY_CPU LOAD_CPU; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((DURATION >= 1 && DURATION <= 600)) || die "DURATION must be 1..600"
((ROUNDS >= 1 && ROUNDS <= 20)) || die "ROUNDS must be 1..20"
for s in ${SYSTEMS//,/ }; do
    case "$s" in direct | nginx | raftgate | raftgate-auth) ;; *) die "unknown system '$s' in SYSTEMS" ;; esac
done

# ---------------------------------------------------------------------------- tools

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v curl >/dev/null || missing+=(curl)
    command -v jq >/dev/null || missing+=(jq)
    if wants nginx && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
        missing+=(nginx)
    fi
    ((${#missing[@]} == 0)) && return
    ((EUID == 0)) || die "missing tools (${missing[*]}); install them with apt-get as root"
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    local pkgs=()
    for p in "${missing[@]}"; do [[ "$p" == nginx ]] || pkgs+=("$p"); done
    ((${#pkgs[@]} == 0)) || apt-get install -y -qq "${pkgs[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" nginx "* ]]; then
        apt-get install -y -qq nginx-light >/dev/null 2>&1 || apt-get install -y -qq nginx >/dev/null
    fi
}

ensure_tools
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

cpus="$(nproc)"
if ((cpus < 2)); then
    log "warning: $cpus CPU: proxy, upstream and wrk all share CPU 0; numbers mean little"
    PROXY_CPU=0 LOAD_CPU=0
fi

# ---------------------------------------------------------------------------- build

if [[ "$BUILD" == 1 ]]; then
    cd "$root"
    if wants raftgate || wants raftgate-auth; then
        cargo build --release -p raftgate-node -p raftgate-chaos
    else
        cargo build --release -p raftgate-chaos --bin raftgate-upstream
    fi
fi
UPSTREAM_BIN="${UPSTREAM_BIN:-$target/release/raftgate-upstream}"
RAFTGATE_BIN="${RAFTGATE_BIN:-$target/release/raftgate}"
[[ -x "$UPSTREAM_BIN" ]] || die "$UPSTREAM_BIN not found (BUILD=1 builds it)"
if wants raftgate || wants raftgate-auth; then
    [[ -x "$RAFTGATE_BIN" ]] || die "$RAFTGATE_BIN not found (BUILD=1 builds it)"
fi

# ---------------------------------------------------------------------------- processes

work="$(mktemp -d -t raftgate-bench-proxy.XXXXXX)"
pids=()

trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------- wrk

# run_wrk NAME URL CONNS [HEADER]: warm-up, then the measured run; prints the output file.
run_wrk() {
    local name="$1" url="$2" conns="$3" header="${4:-}" out="$work/wrk-$1-c$3.txt"
    local args=(-t1 "-c$conns" --timeout 5s)
    [[ -n "$header" ]] && args+=(-H "$header")
    # The moderate-load run, paced: wrk calls the script's delay() before each request.
    if ((LOW_PACE_MS > 0 && conns == LOW_CONNS && conns != CONNS)); then
        [[ -f "$work/paced.lua" ]] ||
            printf 'math.randomseed(os.time())\nfunction delay() return math.random(0, %d) end\n' \
                $((2 * LOW_PACE_MS)) >"$work/paced.lua"
        args+=(-s "$work/paced.lua")
    fi
    timeout $((WARMUP + 30)) taskset -c "$LOAD_CPU" wrk "${args[@]}" "-d${WARMUP}s" "$url" >/dev/null 2>&1 || true
    timeout $((DURATION + 30)) taskset -c "$LOAD_CPU" wrk "${args[@]}" "-d${DURATION}s" --latency "$url" >"$out" 2>&1 || true
    echo "$out"
}

declare -A RESULT # "system:conns:round" -> parse_wrk line; "system:conns" -> the median
ROUND=1

# bench NAME URL [HEADER]: checks one request answers 200 "ok", then both load levels.
bench() {
    local name="$1" url="$2" header="${3:-}" code
    local curl_args=(-s -o "$work/check-$name.body" -w '%{http_code}' --max-time 5)
    [[ -n "$header" ]] && curl_args+=(-H "$header")
    check() {
        code="$(curl "${curl_args[@]}" "$url" || echo 000)"
        [[ "$code" == 200 ]]
    }
    if ! wait_for "$name to answer $url with 200" 15 check; then
        log "$name: GET $url answered $code: $(head -c 300 "$work/check-$name.body" 2>/dev/null)"
    fi
    # Run wrk anyway: a row that fails says so from wrk's own counters.
    local c
    for c in "$CONNS" "$LOW_CONNS"; do
        log "$name: wrk -t1 -c$c -d${DURATION}s $url"
        RESULT["$name:$c:$ROUND"]="$(parse_wrk "$(run_wrk "$name-r$ROUND" "$url" "$c" "$header")")"
    done
}

# ---------------------------------------------------------------------------- upstream

load_at_start="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"
log "work dir $work; proxy on CPU $PROXY_CPU, wrk and upstream on CPU $LOAD_CPU; load average $load_at_start"
taskset -c "$LOAD_CPU" "$UPSTREAM_BIN" --listen 127.0.0.1:0 --name bench --threads 1 \
    >"$work/upstream.log" 2>&1 &
upstream_pid=$!
pids+=("$upstream_pid")
upstream_listening() { grep -q '^listening on ' "$work/upstream.log"; }
wait_for "the upstream to listen" 10 upstream_listening || die "upstream: $(cat "$work/upstream.log")"
UPSTREAM="$(awk '/^listening on / {print $3; exit}' "$work/upstream.log")"
log "upstream at $UPSTREAM"

run_direct() {
    # Ceiling: the upstream alone on the proxy's CPU, wrk on the other.
    taskset -a -p -c "$PROXY_CPU" "$upstream_pid" >/dev/null
    bench direct "http://$UPSTREAM/bench"
    # Otherwise the upstream shares the load generator's CPU; the proxy has its own.
    taskset -a -p -c "$LOAD_CPU" "$upstream_pid" >/dev/null
}

# ---------------------------------------------------------------------------- nginx

run_nginx() {
    start_nginx "$NGINX" "$root/bench/nginx.conf.tmpl" "$work/nginx-r$ROUND" "$UPSTREAM" "$PROXY_CPU"
    bench nginx "http://127.0.0.1:$nginx_port/plain"
    stop_pid "$nginx_pid"
}

# ---------------------------------------------------------------------------- raftgate

# start_raftgate NAME [ENV...]: one node with its own data dir, configured for both routes.
# Sets RG_PID, RG_HTTP, RG_KEY.
start_raftgate() {
    local name="$1"
    shift
    local dir="$work/$name-r$ROUND"
    mkdir -p "$dir"
    # Only what this row sets: no RAFTGATE_* from the caller's environment.
    local unset=() v
    for v in $(compgen -e | grep '^RAFTGATE_' || true); do unset+=(-u "$v"); done
    local extra=()
    [[ -n "${NODE_ENV:-}" ]] && read -r -a extra <<<"$NODE_ENV"
    env "${unset[@]}" RAFTGATE_INSECURE=true "${extra[@]}" "$@" taskset -c "$PROXY_CPU" "$RAFTGATE_BIN" serve \
        --node-id 1 --data-dir "$dir/data" --http-addr 127.0.0.1:0 \
        --admin-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0 --advertise-host 127.0.0.1 \
        >"$dir/stdout.log" 2>"$dir/stderr.log" &
    RG_PID=$!
    pids+=("$RG_PID")
    node_json_ready() { jq -e '.admin_url != "" and .http_addr != ""' "$dir/data/node.json" >/dev/null 2>&1; }
    wait_for "$name to write node.json" 30 node_json_ready ||
        die "$name did not start: $(tail -20 "$dir/stderr.log")"
    local admin
    admin="$(jq -r .admin_url "$dir/data/node.json")"
    RG_HTTP="$(jq -r .http_addr "$dir/data/node.json")"
    healthy() { curl -sf --max-time 2 "$admin/healthz" >/dev/null; }
    wait_for "$name /healthz" 30 healthy || die "$name is not healthy"
    local token
    token="$("$RAFTGATE_BIN" cluster init --server "$admin" 2>>"$dir/cli.log")" ||
        die "cluster init failed: $(cat "$dir/cli.log")"
    api() {
        local body
        body="$(curl -s --max-time 10 -w '\n%{http_code}' -X POST -H "Authorization: Bearer $token" \
            -H 'content-type: application/json' --data "$2" "$admin/admin/v1/$1")"
        [[ "${body##*$'\n'}" == 2* ]] || die "POST /admin/v1/$1 $2: ${body//$'\n'/ }"
        printf '%s' "${body%$'\n'*}"
    }
    api upstreams "{\"id\":\"bench\",\"targets\":[{\"address\":\"$UPSTREAM\"}]}" >/dev/null
    api routes '{"id":"plain","path":"/plain","target":{"upstream":"bench"},"policies":[{"rewrite":{"replace_prefix":"/bench"}}]}' >/dev/null
    api tenants '{"id":"t1"}' >/dev/null
    api consumers '{"id":"c1","tenant":"t1"}' >/dev/null
    RG_KEY="$(api consumers/c1/keys '{"name":"bench"}' | jq -r .key)"
    [[ -n "$RG_KEY" && "$RG_KEY" != null ]] || die "the key answer has no plaintext key"
    api routes '{"id":"auth","tenant":"t1","path":"/auth","target":{"upstream":"bench"},"policies":[{"key_auth":{}},{"rewrite":{"replace_prefix":"/bench"}}]}' >/dev/null
}

run_raftgate() {
    start_raftgate raftgate
    bench raftgate "http://$RG_HTTP/plain"
    stop_pid "$RG_PID"
}

run_raftgate_auth() {
    # Access log: JSON lines through tracing target `access` on stdout (into a file).
    start_raftgate raftgate-auth RAFTGATE_ACCESS_LOG=1
    bench raftgate-auth "http://$RG_HTTP/auth" "Authorization: Bearer $RG_KEY"
    stop_pid "$RG_PID"
    log "raftgate-auth access log: $(wc -l <"$work/raftgate-auth-r$ROUND/stdout.log") lines"
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    ((ROUNDS == 1)) || log "round $ROUND of $ROUNDS"
    if wants direct; then run_direct; fi
    if wants nginx; then run_nginx; fi
    if wants raftgate; then run_raftgate; fi
    if wants raftgate-auth; then run_raftgate_auth; fi
done

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# aggregate SYSTEM CONNS: a parse_wrk line of the median of the rounds that worked
# (each column on its own; the lower middle one for an even count).
aggregate() {
    local s="$1" c="$2" r line oks=() notes=""
    for ((r = 1; r <= ROUNDS; r++)); do
        line="${RESULT["$s:$c:$r"]:-}"
        [[ -n "$line" ]] || continue
        if [[ "$line" == ok* ]]; then oks+=("$line"); else notes+="round$r:${line##* } "; fi
    done
    if ((${#oks[@]} == 0)); then
        echo "FAILED - - - ${notes:-not-run}"
        return
    fi
    local col=() i
    for i in 2 3 4; do
        col+=("$(printf '%s\n' "${oks[@]}" | awk -v i="$i" '{print $i}' | median)")
    done
    echo "ok ${col[*]} ${notes% }"
}

for s in direct nginx raftgate raftgate-auth; do
    for c in "$CONNS" "$LOW_CONNS"; do
        if wants "$s"; then RESULT["$s:$c"]="$(aggregate "$s" "$c")"; fi
    done
done

# ---------------------------------------------------------------------------- report

ms() { [[ "$1" == - || "$1" == NaN ]] && echo "-" || awk -v u="$1" 'BEGIN {printf "%.3f ms", u / 1000}'; }

field() { # field SYSTEM CONNS INDEX (1 status, 2 rps, 3 p50, 4 p99, 5 note)
    local line="${RESULT["$1:$2"]:-}"
    [[ -n "$line" ]] || { echo "-"; return; }
    awk -v i="$3" '{print (NF >= i ? $i : "")}' <<<"$line"
}

ok() { [[ "$(field "$1" "$2" 1)" == ok ]]; }

echo
echo "Proxy overhead: wrk -t1, ${DURATION}s after ${WARMUP}s warm-up; upstream raftgate-upstream /bench"
((ROUNDS == 1)) || echo "(median of $ROUNDS rounds of the whole sequence, each column on its own)"
echo "($cpus CPUs; proxy on CPU $PROXY_CPU; wrk and upstream on CPU $LOAD_CPU; direct: upstream on CPU $PROXY_CPU)"
echo "(1-minute load average at start: $load_at_start; above ~0.5 other processes compete for the CPUs)"
if ((LOW_PACE_MS > 0 && LOW_CONNS > 0 && LOW_CONNS != CONNS)); then
    echo "(c=$LOW_CONNS runs paced: each connection waits a random 0..$((2 * LOW_PACE_MS)) ms before each request)"
fi
echo
printf '%-15s | %12s | %12s | %12s | %9s | %s\n' "system" "req/s c=$CONNS" "p50" "p99" "vs nginx" "note"
printf '%s\n' "----------------+--------------+--------------+--------------+-----------+-----"
for s in direct nginx raftgate raftgate-auth; do
    wants "$s" || continue
    if ok "$s" "$CONNS"; then
        rps="$(field "$s" "$CONNS" 2)"
        ratio="-"
        if ok nginx "$CONNS"; then
            ratio="$(awk -v a="$rps" -v b="$(field nginx "$CONNS" 2)" 'BEGIN {printf "%.2fx", a / b}')"
        fi
        printf '%-15s | %12.0f | %12s | %12s | %9s | %s\n' "$s" "$rps" \
            "$(ms "$(field "$s" "$CONNS" 3)")" "$(ms "$(field "$s" "$CONNS" 4)")" "$ratio" \
            "$(field "$s" "$CONNS" 5)"
    else
        printf '%-15s | %12s | %12s | %12s | %9s | %s\n' "$s" FAILED - - - "$(field "$s" "$CONNS" 5)"
    fi
done
echo
printf '%-15s | %12s | %12s | %12s | %s\n' "system" "req/s c=$LOW_CONNS" "p50" "p99" "p99 added vs direct"
printf '%s\n' "----------------+--------------+--------------+--------------+--------------------"
for s in direct nginx raftgate raftgate-auth; do
    wants "$s" || continue
    if ok "$s" "$LOW_CONNS"; then
        p99="$(field "$s" "$LOW_CONNS" 4)"
        added="-"
        if [[ "$s" != direct ]] && ok direct "$LOW_CONNS"; then
            added="$(awk -v a="$p99" -v b="$(field direct "$LOW_CONNS" 4)" 'BEGIN {printf "%+.3f ms", (a - b) / 1000}')"
        fi
        printf '%-15s | %12.0f | %12s | %12s | %s\n' "$s" "$(field "$s" "$LOW_CONNS" 2)" \
            "$(ms "$(field "$s" "$LOW_CONNS" 3)")" "$(ms "$p99")" "$added"
    else
        printf '%-15s | %12s | %12s | %12s | %s\n' "$s" FAILED - - "$(field "$s" "$LOW_CONNS" 5)"
    fi
done
