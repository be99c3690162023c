#!/usr/bin/env bash
# LLM gateway overhead benchmark: the same mock OpenAI provider (raftgate-llm-mock, no
# added latency) and the same load tool (wrk) (1) directly, (2) through nginx as a plain
# reverse proxy (the reference: what one proxy hop adds in this placement) and (3)
# through one raftgate node's /v1/chat/completions, non-streamed and streamed, at fixed
# request rates and at saturation. Prints p50/p99 of each, the latency nginx and the
# gateway add, and the highest rate each sustains. Not a test: nothing fails on a number.
# See bench/README.md.
#
# Environment: DURATION (10) seconds per measured run, WARMUP (3) seconds before each,
# RATES (1000,5000,10000,20000) offered requests/s, PACE_MS (10) mean think time per
# connection of the fixed-rate runs, MAX_CONNS (64) connections of the saturation run,
# MODES (json,stream), BUILD (1; 0 uses existing binaries), GW_CPU (0), LOAD_CPU (1),
# MOCK_CPU (LOAD_CPU; GW_CPU puts the mock beside the proxies instead of beside wrk),
# MOCK_THREADS (1), NGINX (1; 0 leaves the nginx rows out), KEEP_WORK (0; 1 keeps the
# temp dir with logs and wrk output),
# NODE_ENV (extra KEY=VALUE words for the gateway node, e.g. "RAFTGATE_CALL_LOG=false").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
target="${CARGO_TARGET_DIR:-$root/target}"

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-3}"
RATES="${RATES:-1000,5000,10000,20000}"
PACE_MS="${PACE_MS:-10}"
MAX_CONNS="${MAX_CONNS:-64}"
MODES="${MODES:-json,stream}"
BUILD="${BUILD:-1}"
GW_CPU="${GW_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
MOCK_CPU="${MOCK_CPU:-$LOAD_CPU}"
MOCK_THREADS="${MOCK_THREADS:-1}"
NGINX="${NGINX:-1}"
KEEP_WORK="${KEEP_WORK:-0}"

log() { printf '[llm-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in DURATION WARMUP PACE_MS MAX_CONNS GW_CPU LOAD_CPU MOCK_CPU MOCK_THREADS NGINX; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((DURATION >= 1 && DURATION <= 600)) || die "DURATION must be 1..600"
((PACE_MS >= 1 && PACE_MS <= 1000)) || die "PACE_MS must be 1..1000"
((MAX_CONNS >= 1 && MOCK_THREADS >= 1)) || die "MAX_CONNS and MOCK_THREADS must be at least 1"
[[ "$RATES" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "RATES must be a comma-separated list of numbers"
for m in ${MODES//,/ }; do
    case "$m" in json | stream) ;; *) die "unknown mode '$m' in MODES (json, stream)" ;; esac
done
read -r -a rates <<<"${RATES//,/ }"
read -r -a modes <<<"${MODES//,/ }"
for r in "${rates[@]}"; do
    conns=$(((r * PACE_MS + 500) / 1000))
    ((conns >= 1 && conns <= 10000)) || die "rate $r at PACE_MS=$PACE_MS needs $conns connections (1..10000)"
done

# ---------------------------------------------------------------------------- tools

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v curl >/dev/null || missing+=(curl)
    command -v jq >/dev/null || missing+=(jq)
    if ((NGINX)) && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
        missing+=(nginx-light)
    fi
    ((${#missing[@]} == 0)) && return
    ((EUID == 0)) || die "missing tools (${missing[*]}); install them with apt-get as root"
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_tools
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
systems=(direct)
((NGINX)) && systems+=(nginx)
systems+=(gateway)

cpus="$(nproc)"
if ((cpus < 2)); then
    log "warning: $cpus CPU: gateway, mock and wrk all share CPU 0; numbers mean little"
    GW_CPU=0 LOAD_CPU=0 MOCK_CPU=0
fi

# ---------------------------------------------------------------------------- build

if [[ "$BUILD" == 1 ]]; then
    (cd "$root" && cargo build --release -p raftgate-node -p raftgate-chaos)
fi
RAFTGATE_BIN="${RAFTGATE_BIN:-$target/release/raftgate}"
MOCK_BIN="${MOCK_BIN:-$target/release/raftgate-llm-mock}"
[[ -x "$RAFTGATE_BIN" ]] || die "$RAFTGATE_BIN not found (BUILD=1 builds it)"
[[ -x "$MOCK_BIN" ]] || die "$MOCK_BIN not found (BUILD=1 builds it)"

# ---------------------------------------------------------------------------- processes

work="$(mktemp -d -t raftgate-bench-llm.XXXXXX)"
pids=()

trap cleanup EXIT
trap 'exit 130' INT TERM

# Percent of all CPUs busy over one second (before anything here starts: other processes).
cpu_busy() {
    local a b
    a="$(awk '/^cpu / {printf "%d %d\n", $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)"
    sleep 1
    b="$(awk '/^cpu / {printf "%d %d\n", $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)"
    awk -v a="$a" -v b="$b" 'BEGIN {
        split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; all = busy + y[2] - x[2]
        printf "%.0f\n", (all > 0) ? 100 * busy / all : 0 }'
}

started_at=$SECONDS
load_at_start="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"
busy_at_start="$(cpu_busy)"
if ((busy_at_start > 10)); then
    log "warning: other processes keep the CPUs ${busy_at_start}% busy; the numbers will be noisy"
fi
runs=$((${#modes[@]} * (${#rates[@]} + 1) * ${#systems[@]}))
log "work dir $work; gateway (and nginx) on CPU $GW_CPU, wrk on CPU $LOAD_CPU, mock on CPU $MOCK_CPU; CPUs ${busy_at_start}% busy before the start"
log "$runs runs of ${WARMUP}+${DURATION} s: about $((runs * (WARMUP + DURATION) / 60 + 1)) minutes"

# ---------------------------------------------------------------------------- mock provider

UPSTREAM_KEY="sk-bench"
UPSTREAM_MODEL="gpt-4o-mini"
taskset -c "$MOCK_CPU" "$MOCK_BIN" --flavor openai --addr 127.0.0.1:0 --api-key "$UPSTREAM_KEY" \
    --threads "$MOCK_THREADS" >"$work/mock.json" 2>"$work/mock.log" &
MOCK_PID=$!
pids+=("$MOCK_PID")
mock_ready() { jq -e '.base_url' "$work/mock.json" >/dev/null 2>&1; }
wait_for "the mock provider to listen" 10 mock_ready || die "mock: $(cat "$work/mock.log")"
MOCK_BASE="$(jq -r .base_url "$work/mock.json")"
log "mock provider at $MOCK_BASE"

# ---------------------------------------------------------------------------- nginx

# nginx as a plain reverse proxy to the mock, on the gateway's CPU, one worker, upstream
# keep-alive, no buffering (a stream goes on as it comes). It starts now and runs
# through the whole script: it is idle while the other systems are measured.
if ((NGINX)); then
    mock_addr="${MOCK_BASE#http://}"
    start_nginx "$NGINX_BIN" "$root/bench/nginx-llm.conf.tmpl" "$work/nginx" "${mock_addr%%/*}" "$GW_CPU"
    log "nginx at 127.0.0.1:$nginx_port"
fi

# ---------------------------------------------------------------------------- raftgate

gw="$work/raftgate"
mkdir -p "$gw"
# Only what the script sets: no RAFTGATE_* from the caller's environment.
unset_env=()
for v in $(compgen -e | grep '^RAFTGATE_' || true); do unset_env+=(-u "$v"); done
secret="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
node_env=()
[[ -n "${NODE_ENV:-}" ]] && read -r -a node_env <<<"$NODE_ENV"
env "${unset_env[@]}" RAFTGATE_SECRET_KEY="$secret" RAFTGATE_INSECURE=true "${node_env[@]}" taskset -c "$GW_CPU" "$RAFTGATE_BIN" serve \
    --node-id 1 --data-dir "$gw/data" --http-addr 127.0.0.1:0 \
    --admin-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0 --advertise-host 127.0.0.1 \
    >"$gw/stdout.log" 2>"$gw/stderr.log" &
GW_PID=$!
pids+=("$GW_PID")
node_json_ready() { jq -e '.admin_url != "" and .http_addr != ""' "$gw/data/node.json" >/dev/null 2>&1; }
wait_for "raftgate to write node.json" 30 node_json_ready ||
    die "raftgate did not start: $(tail -20 "$gw/stderr.log")"
ADMIN="$(jq -r .admin_url "$gw/data/node.json")"
GW_HTTP="$(jq -r .http_addr "$gw/data/node.json")"
healthy() { curl -sf --max-time 2 "$ADMIN/healthz" >/dev/null; }
wait_for "raftgate /healthz" 30 healthy || die "raftgate is not healthy"

init="$(curl -s --max-time 30 -X POST "$ADMIN/admin/v1/cluster/init")"
TOKEN="$(jq -r '.admin_token // empty' <<<"$init" 2>/dev/null || true)"
[[ -n "$TOKEN" ]] || die "cluster init: $init"

api() {
    local body
    body="$(curl -s --max-time 10 -w '\n%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
        -H 'content-type: application/json' --data "$2" "$ADMIN/admin/v1/$1")"
    [[ "${body##*$'\n'}" == 2* ]] || die "POST /admin/v1/$1: ${body//$'\n'/ }"
    printf '%s' "${body%$'\n'*}"
}
api tenants '{"id":"t1"}' >/dev/null
api consumers '{"id":"c1","tenant":"t1"}' >/dev/null
GW_KEY="$(api consumers/c1/keys '{"name":"bench"}' | jq -r .key)"
[[ -n "$GW_KEY" && "$GW_KEY" != null ]] || die "the key answer has no plaintext key"
api providers "$(jq -nc --arg u "$MOCK_BASE" --arg k "$UPSTREAM_KEY" \
    '{id: "mock", type: "openai", base_url: $u, api_key: $k}')" >/dev/null
api models "{\"id\":\"bench\",\"tenant\":\"t1\",\"deployments\":[{\"provider\":\"mock\",\"model\":\"$UPSTREAM_MODEL\"}]}" >/dev/null
log "raftgate at $GW_HTTP (admin $ADMIN)"

# ---------------------------------------------------------------------------- targets

# Per system: URL, key, model name.
declare -A URL KEY MODEL
URL[direct]="$MOCK_BASE/chat/completions"
KEY[direct]="$UPSTREAM_KEY"
MODEL[direct]="$UPSTREAM_MODEL"
URL[nginx]="http://127.0.0.1:${nginx_port:-0}/v1/chat/completions"
KEY[nginx]="$UPSTREAM_KEY"
MODEL[nginx]="$UPSTREAM_MODEL"
URL[gateway]="http://$GW_HTTP/v1/chat/completions"
KEY[gateway]="$GW_KEY"
MODEL[gateway]="bench"

body_for() { # body_for SYSTEM MODE
    local stream=""
    [[ "$2" == stream ]] && stream=',"stream":true'
    printf '{"model":"%s","messages":[{"role":"user","content":"hello"}]%s}' "${MODEL[$1]}" "$stream"
}

# One request of each kind must answer 200 with the mock's reply before any load (the
# gateway needs a moment to publish the model it was just given).
check() { # check SYSTEM MODE
    local out="$work/check-$1-$2.body" code
    code="$(curl -s -o "$out" -w '%{http_code}' --max-time 5 -X POST \
        -H "Authorization: Bearer ${KEY[$1]}" -H 'content-type: application/json' \
        --data "$(body_for "$1" "$2")" "${URL[$1]}" || echo 000)"
    [[ "$code" == 200 ]] || return 1
    if [[ "$2" == stream ]]; then # the reply comes word by word
        grep -q '"content":"hello"' "$out" && grep -q '^data: \[DONE\]' "$out"
    else
        grep -q 'mock reply to: hello' "$out"
    fi
}
for s in "${systems[@]}"; do
    for m in "${modes[@]}"; do
        wait_for "$s $m to answer 200" 15 check "$s" "$m" ||
            die "$s $m: $(head -c 400 "$work/check-$s-$m.body" 2>/dev/null)"
    done
done

# ---------------------------------------------------------------------------- wrk

# lua SYSTEM MODE PACE: a wrk script POSTing the chat body; with PACE > 0 every connection
# waits a random 0..2*PACE ms (mean PACE) before each request, which spreads the
# connections' requests evenly in time (all connections start together otherwise).
lua() {
    local f="$work/$1-$2-p$3.lua"
    {
        echo 'wrk.method = "POST"'
        echo 'wrk.headers["Content-Type"] = "application/json"'
        echo "wrk.headers[\"Authorization\"] = \"Bearer ${KEY[$1]}\""
        echo "wrk.body = '$(body_for "$1" "$2")'"
        if (($3 > 0)); then
            echo 'math.randomseed(os.time())'
            echo "function delay() return math.random(0, $((2 * $3))) end"
        fi
    } >"$f"
    echo "$f"
}

# Noise check: CPU time spent on the gateway's CPU by anything but the gateway (user +
# system ticks of that CPU minus the gateway's own, and the mock's when it is placed
# there), as % of a measured run.
HZ="$(getconf CLK_TCK 2>/dev/null || echo 100)"
gw_cpu_ticks() { awk -v c="cpu$GW_CPU" '$1 == c {printf "%d\n", $2 + $3 + $4}' /proc/stat; }
own_ticks() { awk '{printf "%d\n", $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
gw_own_ticks() { own_ticks "$GW_PID"; }
mock_ticks_there() { if ((MOCK_CPU == GW_CPU)); then own_ticks "$MOCK_PID"; else echo 0; fi; }

# "COUNT UNDER_1MS UNDER_5MS" of the gateway's own LLM call histogram (request read to
# the answer's end, as the node timed it).
node_hist() {
    curl -s --max-time 5 "$ADMIN/metrics" | awk '
        /^raftgate_llm_request_duration_seconds_count[{ ]/ {c += $NF}
        /^raftgate_llm_request_duration_seconds_bucket\{/ && /le="0.001"/ {a += $NF}
        /^raftgate_llm_request_duration_seconds_bucket\{/ && /le="0.005"/ {b += $NF}
        END {printf "%d %d %d\n", c, a, b}'
}

# slow_share TOTAL0 UNDER0 TOTAL1 UNDER1: the share counted between two readings that
# was not under the bound, in %.
slow_share() {
    awk -v t="$(($3 - $1))" -v u="$(($4 - $2))" 'BEGIN {printf "%.2f", (t > 0 ? (t - u) * 100 / t : 0)}'
}

# run_wrk NAME SCRIPT URL CONNS: warm-up, then the measured run; prints the output file.
run_wrk() {
    local name="$1" script="$2" url="$3" conns="$4" out="$work/wrk-$1.txt" c0 g0 m0 t0
    local args=(-t1 "-c$conns" --timeout 5s -s "$script")
    timeout $((WARMUP + 30)) taskset -c "$LOAD_CPU" wrk "${args[@]}" "-d${WARMUP}s" "$url" >/dev/null 2>&1 || true
    [[ "$name" == *-gateway-* ]] && node_hist >"$work/hist-$name.0"
    c0="$(gw_cpu_ticks)" g0="$(gw_own_ticks)" m0="$(mock_ticks_there)" t0="$(date +%s%N)"
    timeout $((DURATION + 30)) taskset -c "$LOAD_CPU" wrk "${args[@]}" "-d${DURATION}s" --latency "$url" >"$out" 2>&1 || true
    [[ "$name" == *-gateway-* ]] && node_hist >"$work/hist-$name.1"
    local g=$(($(gw_own_ticks) - g0))
    awk -v c="$(($(gw_cpu_ticks) - c0 - $(mock_ticks_there) + m0))" -v g="$g" -v hz="$HZ" \
        -v ns="$(($(date +%s%N) - t0))" -v n="$name" \
        'BEGIN {o = 100 * (c - g) / hz / (ns / 1e9); printf "%s %.0f\n", n, (o < 0) ? 0 : o}' >>"$work/cpu-other.txt"
    echo "$g" >"$work/gw-ticks-$name"
    echo "$out"
}

# The gateway's own counts from its metrics: LLM answers by status class ("2xx:N") and
# provider attempts by outcome ("attempt-ok:N").
llm_counts() {
    curl -s --max-time 5 "$ADMIN/metrics" |
        awk 'function label(name,   v) {
                 if (!match($0, name "=\"[^\"]*\"")) return "?"
                 v = substr($0, RSTART, RLENGTH); sub(/^[^"]*"/, "", v); sub(/"$/, "", v); return v }
             /^raftgate_llm_requests_total\{/ { n[label("status_class")] += $NF }
             /^raftgate_llm_attempts_total\{/ { n["attempt-" label("outcome")] += $NF }
             END { for (c in n) printf "%s:%d ", c, n[c] }'
}

declare -A RESULT # "mode:system:load" -> parse_wrk line (load: a rate, or "max")

# measure MODE SYSTEM LOAD
measure() {
    local mode="$1" sys="$2" load="$3" conns pace name before line hc0 ha0 hb0 hc1 ha1 hb1
    if [[ "$load" == max ]]; then
        conns="$MAX_CONNS" pace=0
    else
        conns=$(((load * PACE_MS + 500) / 1000)) pace="$PACE_MS"
    fi
    name="$mode-$sys-$load"
    log "$name: wrk -t1 -c$conns -d${DURATION}s$( ((pace > 0)) && echo " (paced, mean ${pace} ms per connection)")"
    [[ "$sys" == gateway ]] && before="$(llm_counts)"
    line="$(parse_wrk "$(run_wrk "$name" "$(lua "$sys" "$mode" "$pace")" "${URL[$sys]}" "$conns")")"
    if [[ "$sys" == gateway ]]; then
        echo "$name before: $before after: $(llm_counts)" >>"$work/gateway-counts.txt"
        # The share of calls the gateway itself timed at 1 ms (5 ms) or more, warm-up
        # excluded: well under 1 % while wrk's p99 is high means the tail is outside it.
        read -r hc0 ha0 hb0 <"$work/hist-$name.0"
        read -r hc1 ha1 hb1 <"$work/hist-$name.1"
        ((hc1 > hc0)) && line="${line% } node-slow:1ms=$(slow_share "$hc0" "$ha0" "$hc1" "$ha1")%,5ms=$(slow_share "$hc0" "$hb0" "$hc1" "$hb1")%"
        # The gateway's own CPU time per completed call of the measured run (user +
        # system): steadier than a p99 for comparing two builds.
        local calls
        calls="$(awk '/ requests in / {print $1}' "$work/wrk-$name.txt")"
        ((${calls:-0} > 0)) && line="${line% } cpu:$(awk -v g="$(cat "$work/gw-ticks-$name")" -v hz="$HZ" -v n="$calls" \
            'BEGIN {printf "%.0f", g / hz * 1e6 / n}')us/call"
    fi
    RESULT["$mode:$sys:$load"]="$line"
}

# The systems alternate at every load, so drift over the run affects all alike.
for m in "${modes[@]}"; do
    for r in "${rates[@]}" max; do
        for s in "${systems[@]}"; do
            measure "$m" "$s" "$r"
        done
    done
done

# Non-2xx answers by class as the gateway counted them (across warm-ups and runs).
gw_classes="$(llm_counts)"
gw_errors="$(grep -c 'ERROR' "$gw/stderr.log" || true)"
gw_warns="$(grep -c 'WARN' "$gw/stderr.log" || true)"

# ---------------------------------------------------------------------------- report

ms() { [[ "$1" == - || "$1" == NaN ]] && echo "-" || awk -v u="$1" 'BEGIN {printf "%.3f", u / 1000}'; }

field() { # field MODE SYSTEM LOAD INDEX (1 status, 2 rps, 3 p50, 4 p99, 5 note)
    local line="${RESULT["$1:$2:$3"]:-}"
    [[ -n "$line" ]] || { echo "-"; return; }
    # The note (5) is every word from the fifth on.
    awk -v i="$4" '{s = ""; for (j = i; j <= (i == 5 ? NF : i) && j <= NF; j++) s = s (s == "" ? "" : " ") $j; print s}' <<<"$line"
}
ok() { [[ "$(field "$1" "$2" "$3" 1)" == ok ]]; }
rps() { ok "$1" "$2" "$3" && awk -v r="$(field "$1" "$2" "$3" 2)" 'BEGIN {printf "%.0f", r}' || echo FAILED; }
diff_ms() { # diff_ms MODE LOAD INDEX [SYSTEM]: SYSTEM (gateway) minus direct
    local sys="${4:-gateway}"
    if ok "$1" "$sys" "$2" && ok "$1" direct "$2"; then
        awk -v a="$(field "$1" "$sys" "$2" "$3")" -v b="$(field "$1" direct "$2" "$3")" \
            'BEGIN {printf "%+.3f", (a - b) / 1000}'
    else
        echo "-"
    fi
}
note() {
    local n="" s
    for s in "${systems[@]}"; do
        [[ -n "${RESULT["$1:$s:$2"]:-}" ]] || continue
        local w
        w="$(field "$1" "$s" "$2" 5)"
        if [[ "$s" == gateway ]] && ok "$1" "$s" "$2"; then
            n+=" $w"
        elif [[ -n "$w" ]] || ! ok "$1" "$s" "$2"; then
            n+=" $s:$w" # a failed run, or socket errors
        fi
    done
    echo "${n## }"
}

echo
echo "LLM gateway overhead: POST /v1/chat/completions, mock OpenAI provider with no added latency"
echo "wrk -t1, ${DURATION}s after ${WARMUP}s warm-up per run; fixed rates: RATE*${PACE_MS}/1000 connections"
echo "each waiting a random 0..$((2 * PACE_MS)) ms (mean ${PACE_MS}) before each request; max: ${MAX_CONNS} connections, no wait"
echo "($cpus CPUs; gateway and nginx on CPU $GW_CPU; wrk on CPU $LOAD_CPU; mock on CPU $MOCK_CPU; before the start: CPUs ${busy_at_start}% busy, load average $load_at_start)"
echo "latencies in ms; added = the proxy's percentile minus direct's at the same offered load;"
echo "nginx (a plain reverse proxy, same placement) is the reference for what one hop adds here"
echo
fmt='%-6s | %-8s | %9s | %7s | %7s | %9s | %7s | %9s | %9s | %7s | %7s | %9s | %9s | %s\n'
printf "$fmt" mode offered "direct/s" "d p50" "d p99" "nginx/s" "n p99" "n added99" "gateway/s" "g p50" "g p99" "added p50" "added p99" note
printf '%s\n' "-------+----------+-----------+---------+---------+-----------+---------+-----------+-----------+---------+---------+-----------+-----------+-----"
for m in "${modes[@]}"; do
    for r in "${rates[@]}" max; do
        n_rps="-" n_p99="-"
        if ((NGINX)); then n_rps="$(rps "$m" nginx "$r")" n_p99="$(ms "$(field "$m" nginx "$r" 4)")"; fi
        printf "$fmt" "$m" "$([[ $r == max ]] && echo "max c=$MAX_CONNS" || echo "$r/s")" \
            "$(rps "$m" direct "$r")" "$(ms "$(field "$m" direct "$r" 3)")" "$(ms "$(field "$m" direct "$r" 4)")" \
            "$n_rps" "$n_p99" "$(diff_ms "$m" "$r" 4 nginx)" \
            "$(rps "$m" gateway "$r")" "$(ms "$(field "$m" gateway "$r" 3)")" "$(ms "$(field "$m" gateway "$r" 4)")" \
            "$(diff_ms "$m" "$r" 3)" "$(diff_ms "$m" "$r" 4)" "$(note "$m" "$r")"
    done
done
echo
# Sustained: no error and at least 90 % of the offered rate achieved.
for m in "${modes[@]}"; do
    best="" best_added="" best_nginx="-"
    for r in "${rates[@]}"; do
        if ok "$m" gateway "$r" && awk -v a="$(field "$m" gateway "$r" 2)" -v r="$r" 'BEGIN {exit !(a >= 0.9 * r)}'; then
            if [[ -z "$best" ]] || ((r > best)); then
                best="$r" best_added="$(diff_ms "$m" "$r" 4)" best_nginx="$(diff_ms "$m" "$r" 4 nginx)"
            fi
        fi
    done
    printf '%-6s: saturation direct %s req/s, nginx %s, gateway %s req/s (%s); highest fixed rate the gateway sustained (no error, >= 90%% achieved): %s, p99 added there %s ms (nginx %s ms)\n' \
        "$m" "$(rps "$m" direct max)" "$( ((NGINX)) && rps "$m" nginx max || echo -)" "$(rps "$m" gateway max)" \
        "$(ok "$m" gateway max && ok "$m" direct max && awk -v a="$(field "$m" gateway max 2)" -v b="$(field "$m" direct max 2)" 'BEGIN {printf "%.2fx of direct", a / b}' || echo "-")" \
        "${best:-none}${best:+/s}" "${best_added:--}" "$best_nginx"
done
# (nginx's own runs leave it out: nginx is the other process on that CPU then.)
worst="$(grep -v -- '-nginx-' "$work/cpu-other.txt" 2>/dev/null | sort -k2,2n | tail -1)"
echo "other processes on CPU $GW_CPU (the gateway's) during a measured run: at most ${worst##* }% (${worst%% *})$(
    ((${worst##* } > 5)) && echo "; above ~5 % that run's numbers are disturbed, run again on an idle machine")"
echo "gateway counters over the whole run (warm-ups included): ${gw_classes:-none}; log lines ERROR: $gw_errors, WARN: $gw_warns"
echo "references (other machines, other setups): TensorZero p99 0.94 ms total at 10k QPS on 4 vCPU;"
echo "LiteLLM p99 5.87 ms at 100 QPS, fails at 1k QPS"
log "done in $((SECONDS - started_at)) s"
