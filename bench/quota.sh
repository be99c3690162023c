#!/usr/bin/env bash
# Global-quota overhead benchmark: the same raftgate route (key auth + rewrite to the
# raftgate-upstream /bench endpoint) without and with a strict per-API-key quota whose
# limit is high enough never to reject, with 1, 100 and 10,000 distinct API keys (wrk
# rotates `Authorization: Bearer` over them), on one node and on a 3-node cluster.
# Prints the throughput ratio (quota / no quota), the p99 latency the quota adds, and
# the Raft writes per second the quota causes (raftgate_quota_sync_writes_total over the
# measured run). On 3 nodes the note column gives `peers-cpu:N%` per run: the CPU the two
# nodes wrk does not talk to used meanwhile, in % of one core (they share the core of the
# node under load). Not a test: nothing fails on a number. See bench/README.md "Quotas".
#
# Environment: DURATION (10) seconds per measured run, ROUNDS (3) pairs of runs per row
# (no-quota then quota, quota then no-quota, ...: the order alternates so drift over a
# row does not land on one side; the report shows medians), CONNS (64) connections of the
# throughput run, LOW_CONNS (4) of the moderate-load run (0 skips it), LOW_PACE_MS (0; N:
# each LOW_CONNS connection waits a random 0..2N ms before each request, so the offered
# load is about LOW_CONNS / N calls per ms whatever the node's speed), WARMUP (3) seconds,
# KEYS (1,100,10000), NODES (1,3), LIMIT (100000000 per minute per key), BUILD (1; 0 uses
# existing binaries), PROXY_CPU (0), LOAD_CPU (1), PEERS_CPU (PROXY_CPU: the CPU of the
# 3-node cluster's nodes wrk does not talk to), KEY_PARALLEL (32) concurrent key
# creations, KEEP_WORK (0; 1 keeps the temp dir with logs and wrk output), NODE_ENV
# (extra KEY=VALUE words for every node, e.g. "RAFTGATE_CALL_LOG=false").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
target="${CARGO_TARGET_DIR:-$root/target}"

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-64}"
LOW_CONNS="${LOW_CONNS:-4}"
LOW_PACE_MS="${LOW_PACE_MS:-0}"
WARMUP="${WARMUP:-3}"
KEYS="${KEYS:-1,100,10000}"
NODES="${NODES:-1,3}"
LIMIT="${LIMIT:-100000000}"
BUILD="${BUILD:-1}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
PEERS_CPU="${PEERS_CPU:-$PROXY_CPU}"
KEY_PARALLEL="${KEY_PARALLEL:-32}"
KEEP_WORK="${KEEP_WORK:-0}"

log() { printf '[quota-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in DURATION ROUNDS CONNS LOW_CONNS LOW_PACE_MS WARMUP LIMIT PROXY_CPU LOAD_CPU KEY_PARALLEL; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((DURATION >= 1 && DURATION <= 600)) || die "DURATION must be 1..600"
((ROUNDS >= 1 && ROUNDS <= 20)) || die "ROUNDS must be 1..20"
((KEY_PARALLEL >= 1)) || die "KEY_PARALLEL must be at least 1"
for k in ${KEYS//,/ }; do
    [[ "$k" =~ ^[0-9]+$ ]] && ((k >= 1 && k <= 100000)) || die "KEYS entries must be 1..100000, got '$k'"
done
for n in ${NODES//,/ }; do
    [[ "$n" == 1 || "$n" == 3 ]] || die "NODES entries must be 1 or 3, got '$n'"
done

# ---------------------------------------------------------------------------- tools

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v curl >/dev/null || missing+=(curl)
    command -v jq >/dev/null || missing+=(jq)
    ((${#missing[@]} == 0)) && return
    ((EUID == 0)) || die "missing tools (${missing[*]}); install them with apt-get as root"
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
}
ensure_tools

cpus="$(nproc)"
CLK_TCK="$(getconf CLK_TCK)"
if ((cpus < 2)); then
    log "warning: $cpus CPU: nodes, upstream and wrk all share CPU 0; numbers mean little"
    PROXY_CPU=0 LOAD_CPU=0 PEERS_CPU=0
fi

# ---------------------------------------------------------------------------- build

if [[ "$BUILD" == 1 ]]; then
    (cd "$root" && cargo build --release -p raftgate-node -p raftgate-chaos)
fi
UPSTREAM_BIN="${UPSTREAM_BIN:-$target/release/raftgate-upstream}"
RAFTGATE_BIN="${RAFTGATE_BIN:-$target/release/raftgate}"
[[ -x "$UPSTREAM_BIN" ]] || die "$UPSTREAM_BIN not found (BUILD=1 builds it)"
[[ -x "$RAFTGATE_BIN" ]] || die "$RAFTGATE_BIN not found (BUILD=1 builds it)"

# ---------------------------------------------------------------------------- processes

work="$(mktemp -d -t raftgate-bench-quota.XXXXXX)"
pids=()

trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------- wrk

# The wrk script: one `Authorization: Bearer` per request, rotating over a key file
# (one plaintext key per line), starting at a random key. With PACE > 0 (ms) every
# connection waits a random 0..2*PACE ms before each request (a paced closed loop).
write_lua() {
    local keys_file="$1" out="$2" pace="${3:-0}"
    cat >"$out" <<EOF
local keys = {}
for line in io.lines("$keys_file") do
  if #line > 0 then keys[#keys + 1] = "Bearer " .. line end
end
math.randomseed(os.time())
local i = math.random(#keys)
request = function()
  i = i % #keys + 1
  return wrk.format(nil, nil, { ["Authorization"] = keys[i] })
end
EOF
    if ((pace > 0)); then
        echo "function delay() return math.random(0, $((2 * pace))) end" >>"$out"
    fi
}

# "WRITES UNAVAILABLE EXHAUSTED WAITS WAIT_SECS PASSES PASS_SECS PASSES_OVER_1MS
#  CALLS CALLS_UNDER_1MS CALLS_UNDER_2_5MS TRIES TRIES_UNDER_1MS TRIES_UNDER_2_5MS":
# raftgate_quota_sync_writes_total (every result), raftgate_quota_rejected_total by
# reason and the calls that waited for a grant (raftgate_quota_wait_seconds count and
# sum), summed over the given admin URLs; then the full passes of the sync loop
# (raftgate_quota_pass_seconds{pass="full"}: count, sum, how many took over 1 ms) of the
# last URL only — the node wrk talks to, whose one runtime thread a pass stalls; then,
# of that node too, its calls (raftgate_http_request_duration_seconds: request to
# response headers) and upstream tries (raftgate_upstream_duration_seconds): counts, and
# how many took under 1 ms and under 2.5 ms (the histograms' bucket bounds).
quota_counters() {
    local admin last="${*: -1}"
    for admin in "$@"; do
        curl -s --max-time 5 "$admin/metrics" | sed "s|^|$admin |" || true
    done | awk -v last="$last" '
        {admin = $1; sub(/^[^ ]+ /, "")}
        /^raftgate_quota_sync_writes_total[{ ]/ {w += $NF}
        /^raftgate_quota_rejected_total\{/ && /reason="unavailable"/ {u += $NF}
        /^raftgate_quota_rejected_total\{/ && /reason="exhausted"/ {e += $NF}
        /^raftgate_quota_wait_seconds_count[{ ]/ {n += $NF}
        /^raftgate_quota_wait_seconds_sum[{ ]/ {t += $NF}
        admin == last && /^raftgate_quota_pass_seconds_count\{pass="full"/ {pc = $NF}
        admin == last && /^raftgate_quota_pass_seconds_sum\{pass="full"/ {ps = $NF}
        admin == last && /^raftgate_quota_pass_seconds_bucket\{/ && /pass="full"/ && /le="0.001"/ {p1 = $NF}
        admin == last && /^raftgate_http_request_duration_seconds_count[{ ]/ {hc += $NF}
        admin == last && /^raftgate_http_request_duration_seconds_bucket\{/ && /le="0.001"/ {h1 += $NF}
        admin == last && /^raftgate_http_request_duration_seconds_bucket\{/ && /le="0.0025"/ {h2 += $NF}
        admin == last && /^raftgate_upstream_duration_seconds_count[{ ]/ {uc += $NF}
        admin == last && /^raftgate_upstream_duration_seconds_bucket\{/ && /le="0.001"/ {u1 += $NF}
        admin == last && /^raftgate_upstream_duration_seconds_bucket\{/ && /le="0.0025"/ {u2 += $NF}
        END {printf "%d %d %d %d %.6f %d %.6f %d %d %d %d %d %d %d\n", w, u, e, n, t, pc, ps, pc - p1, hc, h1, h2, uc, u1, u2}'
}

# slow_share TOTAL0 UNDER0 TOTAL1 UNDER1: the share of what was counted between two
# readings that was not under the bound, in %.
slow_share() {
    awk -v t="$(($3 - $1))" -v u="$(($4 - $2))" 'BEGIN {printf "%.2f", (t > 0 ? (t - u) * 100 / t : 0)}'
}

# peer_cpu_ticks: CPU time (clock ticks) used so far by the nodes wrk does not talk to —
# on 3 nodes the leader and the other follower, whose work is replication and apply.
peer_cpu_ticks() {
    local pid total=0 i
    for ((i = 0; i + 1 < ${#NODE_PIDS[@]}; i++)); do
        pid="${NODE_PIDS[$i]}"
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

declare -A RESULT # "nodes:keys:system:round:conns" -> "parse_wrk line WRITES_PER_S"

# measure TAG URL LUA CONNS ADMIN...: warm-up, then the measured run with the Raft write
# counters read before and after it.
measure() {
    local tag="$1" url="$2" lua="$3" conns="$4"
    shift 4
    local out="$work/wrk-${tag//:/-}-c$conns.txt" before after line w0 u0 e0 n0 t0 w1 u1 e1 n1 t1 cpu0 cpu1
    local args=(-t1 "-c$conns" --timeout 5s -s "$lua")
    log "$tag: wrk -t1 -c$conns -d${DURATION}s $url"
    timeout $((WARMUP + 30)) taskset -c "$LOAD_CPU" wrk "${args[@]}" "-d${WARMUP}s" "$url" >/dev/null 2>&1 || true
    before="$(quota_counters "$@")"
    cpu0="$(peer_cpu_ticks)"
    timeout $((DURATION + 30)) taskset -c "$LOAD_CPU" wrk "${args[@]}" "-d${DURATION}s" --latency "$url" >"$out" 2>&1 || true
    cpu1="$(peer_cpu_ticks)"
    after="$(quota_counters "$@")"
    line="$(parse_wrk "$out")"
    # Rejections by the quota and calls that waited for a grant during the run (warm-up
    # excluded) go into the note: waits mean a Raft round trip on the call's path.
    read -r w0 u0 e0 n0 t0 pc0 ps0 po0 hc0 ha0 hb0 uc0 ua0 ub0 <<<"$before"
    read -r w1 u1 e1 n1 t1 pc1 ps1 po1 hc1 ha1 hb1 uc1 ua1 ub1 <<<"$after"
    if ((u1 > u0 || e1 > e0)); then
        line="${line% } quota-rejected:unavailable=$((u1 - u0)),exhausted=$((e1 - e0))"
    fi
    if ((n1 > n0)); then
        line="${line% } grant-waits:$((n1 - n0)),mean=$(awk -v t="$t1" -v s="$t0" -v n="$((n1 - n0))" \
            'BEGIN {printf "%.2f", (t - s) * 1000 / n}')ms"
    fi
    # The serving node's full passes over its buckets: each one holds its runtime thread.
    if ((pc1 > pc0)); then
        line="${line% } full-passes:$((pc1 - pc0)),mean=$(awk -v t="$ps1" -v s="$ps0" -v n="$((pc1 - pc0))" \
            'BEGIN {printf "%.2f", (t - s) * 1000 / n}')ms,over-1ms=$((po1 - po0))"
    fi
    # The share of the serving node's calls (request to response headers, as the node
    # timed them) and of its upstream tries that took 1 ms or more and 2.5 ms or more: a
    # p99 in wrk's column that the node's own share does not reach was added outside it
    # (the load side, the kernel, the way back).
    if ((hc1 > hc0)); then
        line="${line% } node-slow:1ms=$(slow_share "$hc0" "$ha0" "$hc1" "$ha1")%,2.5ms=$(slow_share "$hc0" "$hb0" "$hc1" "$hb1")%"
        line="${line% } upstream-slow:1ms=$(slow_share "$uc0" "$ua0" "$uc1" "$ua1")%,2.5ms=$(slow_share "$uc0" "$ub0" "$uc1" "$ub1")%"
    fi
    # What the other nodes spent meanwhile, in % of one core (the usage rounds'
    # replication and apply): while they share its core, the node under load loses it.
    if ((${#NODE_PIDS[@]} > 1)); then
        line="${line% } peers-cpu:$(awk -v t="$((cpu1 - cpu0))" -v hz="$CLK_TCK" -v d="$DURATION" \
            'BEGIN {printf "%.0f", t * 100 / hz / d}')%"
    fi
    RESULT["$tag:$conns"]="$line $(awk -v a="$w1" -v b="$w0" -v d="$DURATION" 'BEGIN {printf "%.1f", (a - b) / d}')"
}

# ---------------------------------------------------------------------------- upstream

load_at_start="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"
log "work dir $work; nodes on CPU $PROXY_CPU, wrk and upstream on CPU $LOAD_CPU; load average $load_at_start"
taskset -c "$LOAD_CPU" "$UPSTREAM_BIN" --listen 127.0.0.1:0 --name bench --threads 1 \
    >"$work/upstream.log" 2>&1 &
pids+=($!)
upstream_listening() { grep -q '^listening on ' "$work/upstream.log"; }
wait_for "the upstream to listen" 10 upstream_listening || die "upstream: $(cat "$work/upstream.log")"
UPSTREAM="$(awk '/^listening on / {print $3; exit}' "$work/upstream.log")"
log "upstream at $UPSTREAM"

# ---------------------------------------------------------------------------- cluster

ADMINS=() # admin URL of each node of the current cluster
HTTPS=()  # data-plane address of each node
NODE_PIDS=()
TOKEN=""

# start_node DIR ID CPU: one `raftgate serve` on loopback pinned to CPU, port 0
# everywhere; appends to ADMINS, HTTPS and NODE_PIDS.
start_node() {
    local dir="$1" id="$2" cpu="$3"
    mkdir -p "$dir"
    local unset=() v
    for v in $(compgen -e | grep '^RAFTGATE_' || true); do unset+=(-u "$v"); done
    local extra=()
    [[ -n "${NODE_ENV:-}" ]] && read -r -a extra <<<"$NODE_ENV"
    env "${unset[@]}" RAFTGATE_INSECURE=true "${extra[@]}" taskset -c "$cpu" "$RAFTGATE_BIN" serve \
        --node-id "$id" --data-dir "$dir/data" --http-addr 127.0.0.1:0 \
        --admin-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0 --advertise-host 127.0.0.1 \
        >"$dir/stdout.log" 2>"$dir/stderr.log" &
    local pid=$!
    pids+=("$pid")
    NODE_PIDS+=("$pid")
    node_json_ready() { jq -e '.admin_url != "" and .http_addr != ""' "$dir/data/node.json" >/dev/null 2>&1; }
    wait_for "node $id to write node.json" 30 node_json_ready ||
        die "node $id did not start: $(tail -20 "$dir/stderr.log")"
    local admin
    admin="$(jq -r .admin_url "$dir/data/node.json")"
    healthy() { curl -sf --max-time 2 "$admin/healthz" >/dev/null; }
    wait_for "node $id /healthz" 30 healthy || die "node $id is not healthy"
    ADMINS+=("$admin")
    HTTPS+=("$(jq -r .http_addr "$dir/data/node.json")")
}

# api METHOD PATH BODY: an admin call on node 1; dies on a non-2xx answer.
api() {
    local body
    body="$(curl -s --max-time 30 -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" \
        -H 'content-type: application/json' --data "$3" "${ADMINS[0]}/admin/v1/$2")"
    [[ "${body##*$'\n'}" == 2* ]] || die "$1 /admin/v1/$2 $3: ${body//$'\n'/ }"
    printf '%s' "${body%$'\n'*}"
}

# start_cluster N: N nodes, node 1 initialised, the others joined as voters.
start_cluster() {
    local n="$1" dir="$work/cluster-$1" i
    ADMINS=() HTTPS=() NODE_PIDS=()
    # The last node is the one wrk talks to; the others may sit elsewhere (PEERS_CPU).
    for i in $(seq 1 "$n"); do
        start_node "$dir/node$i" "$i" "$([[ "$i" == "$n" ]] && echo "$PROXY_CPU" || echo "$PEERS_CPU")"
    done
    TOKEN="$("$RAFTGATE_BIN" cluster init --server "${ADMINS[0]}" 2>>"$dir/cli.log")" ||
        die "cluster init failed: $(cat "$dir/cli.log")"
    for i in $(seq 2 "$n"); do
        "$RAFTGATE_BIN" cluster join --server "${ADMINS[$((i - 1))]}" --token "$TOKEN" \
            --via "${ADMINS[0]}" >>"$dir/cli.log" 2>&1 || die "node $i could not join: $(tail -5 "$dir/cli.log")"
    done
    voters() {
        local v
        v="$(curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" "${ADMINS[0]}/admin/v1/cluster" |
            jq '[.nodes[] | select(.voter and .reachable)] | length' 2>/dev/null || echo 0)"
        [[ "$v" == "$n" ]]
    }
    wait_for "$n reachable voters" 60 voters || die "the cluster did not reach $n voters"
    api POST upstreams "{\"id\":\"bench\",\"targets\":[{\"address\":\"$UPSTREAM\"}]}" >/dev/null
    api POST tenants '{"id":"t1"}' >/dev/null
    api POST consumers '{"id":"c1","tenant":"t1"}' >/dev/null
    api POST routes '{"id":"noquota","tenant":"t1","path":"/noquota","target":{"upstream":"bench"},"policies":[{"key_auth":{}},{"rewrite":{"replace_prefix":"/bench"}}]}' >/dev/null
}

stop_cluster() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
    NODE_PIDS=()
}

# create_keys DIR FROM TO: keys kFROM..kTO of consumer c1 through the admin API
# (POST /admin/v1/consumers/c1/keys, KEY_PARALLEL at a time with curl --parallel); their
# plaintexts are appended to DIR/keys.txt.
create_keys() {
    local dir="$1" from="$2" to="$3" i
    ((from <= to)) || return 0
    local out="$dir/keys-$from-$to" cfg="$dir/keys-$from-$to.curl"
    mkdir -p "$out"
    for i in $(seq "$from" "$to"); do
        ((i == from)) || echo next # `next` separates the options of two transfers
        printf 'url = "%s/admin/v1/consumers/c1/keys"\nrequest = "POST"\nheader = "Authorization: Bearer %s"\nheader = "content-type: application/json"\ndata = "{\\"id\\":\\"k%d\\"}"\noutput = "%s/k%d.json"\nmax-time = 60\nsilent\n' \
            "${ADMINS[0]}" "$TOKEN" "$i" "$out" "$i"
    done >"$cfg"
    timeout 1200 curl -sS --parallel --parallel-max "$KEY_PARALLEL" -K "$cfg" || die "creating keys k$from..k$to failed"
    find "$out" -name '*.json' -print0 | xargs -0 jq -r '.key // empty' >>"$dir/keys.txt"
    local want=$((to - from + 1)) got
    got="$(find "$out" -name '*.json' -print0 | xargs -0 jq -r '.key // empty' | wc -l)"
    ((got == want)) || die "asked for $want keys, got $got (answers in $out)"
}

# ---------------------------------------------------------------------------- runs

declare -A KEY_SECS # "nodes:keys" -> seconds to create that many keys

for nodes in ${NODES//,/ }; do
    log "=== $nodes node(s)"
    start_cluster "$nodes"
    dir="$work/cluster-$nodes"
    : >"$dir/keys.txt"
    have=0
    # wrk talks to the last node: on 3 nodes a follower, whose quota writes are forwarded.
    target="${HTTPS[$((nodes - 1))]}"
    for k in $(tr ',' '\n' <<<"$KEYS" | sort -n | uniq); do
        t0=$SECONDS
        create_keys "$dir" $((have + 1)) "$k"
        KEY_SECS["$nodes:$k"]=$((SECONDS - t0))
        log "$nodes node(s): keys k$((have + 1))..k$k created in ${KEY_SECS["$nodes:$k"]}s"
        have=$k
        head -n "$k" "$dir/keys.txt" >"$dir/keys-$k.txt"
        write_lua "$dir/keys-$k.txt" "$dir/keys-$k.lua"
        write_lua "$dir/keys-$k.txt" "$dir/keys-$k-paced.lua" "$LOW_PACE_MS"
        # One policy and route per key count, so no run starts with another's buckets.
        api POST quota_policies "{\"id\":\"q$k\",\"scope\":[\"api_key\"],\"metric\":\"requests\",\"window\":\"minute\",\"limit\":$LIMIT,\"mode\":\"strict\"}" >/dev/null
        api POST routes "{\"id\":\"quota$k\",\"tenant\":\"t1\",\"path\":\"/quota$k\",\"target\":{\"upstream\":\"bench\"},\"policies\":[{\"key_auth\":{}},{\"quota\":\"q$k\"},{\"rewrite\":{\"replace_prefix\":\"/bench\"}}]}" >/dev/null
        key1="$(head -n1 "$dir/keys.txt")"
        for path in noquota "quota$k"; do
            check() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $key1" "http://$target/$path")" == 200 ]]; }
            wait_for "/$path to answer 200 on the target node" 15 check || log "warning: /$path does not answer 200"
        done
        for c in "$CONNS" "$LOW_CONNS"; do
            ((c > 0)) || continue
            lua="$dir/keys-$k.lua"
            [[ "$c" == "$LOW_CONNS" && "$c" != "$CONNS" ]] && lua="$dir/keys-$k-paced.lua"
            for ((r = 1; r <= ROUNDS; r++)); do
                order=(noquota quota)
                ((r % 2 == 1)) || order=(quota noquota)
                for s in "${order[@]}"; do
                    p="$s"
                    [[ "$s" == quota ]] && p="quota$k"
                    measure "$nodes:$k:$s:$r" "http://$target/$p" "$lua" "$c" "${ADMINS[@]}"
                done
            done
        done
    done
    stop_cluster
done

# ---------------------------------------------------------------------------- rounds

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# pair NODES KEYS CONNS: "RATIO P99_ADDED_US" — the medians over the rounds in which both
# runs worked of quota ÷ no-quota req/s and of quota − no-quota p99 (each round's two
# runs are neighbours in time, so the pair cancels drift). Empty when no round did.
pair() {
    local r a b ratios=() added=()
    for ((r = 1; r <= ROUNDS; r++)); do
        a="${RESULT["$1:$2:noquota:$r:$3"]:-}" b="${RESULT["$1:$2:quota:$r:$3"]:-}"
        [[ "$a" == ok* && "$b" == ok* ]] || continue
        ratios+=("$(awk -v q="$(awk '{print $2}' <<<"$b")" -v n="$(awk '{print $2}' <<<"$a")" 'BEGIN {print q / n}')")
        added+=("$(awk -v q="$(awk '{print $4}' <<<"$b")" -v n="$(awk '{print $4}' <<<"$a")" 'BEGIN {print q - n}')")
    done
    ((${#ratios[@]} > 0)) || return 0
    echo "$(printf '%s\n' "${ratios[@]}" | median) $(printf '%s\n' "${added[@]}" | median)"
}

# aggregate KEY CONNS: RESULT[KEY:CONNS] from the rounds that worked — the median of
# each column on its own (req/s, p50, p99, Raft writes/s) — or FAILED with the rounds'
# notes. Notes of rounds that worked (quota rejections) are kept.
aggregate() {
    local key="$1" c="$2" r line oks=() notes="" i col=()
    for ((r = 1; r <= ROUNDS; r++)); do
        line="${RESULT["$key:$r:$c"]:-}"
        [[ -n "$line" ]] || continue
        if [[ "$line" == ok* ]]; then
            oks+=("$line")
            i="$(awk '{for (i = 5; i < NF; i++) printf "%s ", $i}' <<<"$line")"
            [[ -z "$i" ]] || notes+="round$r:$i"
        else
            notes+="round$r:$(awk '{for (i = 5; i < NF; i++) printf "%s ", $i}' <<<"$line")"
        fi
    done
    if ((${#oks[@]} == 0)); then
        echo "FAILED - - - ${notes:-not-run} 0"
        return
    fi
    for i in 2 3 4 NF; do
        col+=("$(printf '%s\n' "${oks[@]}" | awk "{print \$$i}" | median)")
    done
    echo "ok ${col[0]} ${col[1]} ${col[2]} ${notes}${col[3]}"
}

for nodes in ${NODES//,/ }; do
    for k in $(tr ',' '\n' <<<"$KEYS" | sort -n | uniq); do
        for c in "$CONNS" "$LOW_CONNS"; do
            ((c > 0)) || continue
            for s in noquota quota; do
                RESULT["$nodes:$k:$s:$c"]="$(aggregate "$nodes:$k:$s" "$c")"
            done
        done
    done
done

# ---------------------------------------------------------------------------- report

field() { # field KEY INDEX (1 status, 2 rps, 3 p50, 4 p99, last: writes/s)
    local line="${RESULT["$1"]:-}"
    [[ -n "$line" ]] || { echo "-"; return; }
    if [[ "$2" == last ]]; then awk '{print $NF}' <<<"$line"; else awk -v i="$2" '{print $i}' <<<"$line"; fi
}
ok() { [[ "$(field "$1" 1)" == ok ]]; }
note() { awk '{for (i = 5; i < NF; i++) printf "%s ", $i}' <<<"${RESULT["$1"]:-}"; }
ms() { [[ "$1" == - || "$1" == NaN ]] && echo "-" || awk -v u="$1" 'BEGIN {printf "%.3f", u / 1000}'; }

echo
echo "Global quota overhead: wrk -t1 (Lua: rotating Authorization: Bearer over N keys), ${DURATION}s after ${WARMUP}s warm-up"
echo "route: key_auth + rewrite (no quota) vs key_auth + strict per-key quota (limit $LIMIT/minute) + rewrite"
echo "($cpus CPUs; nodes on CPU $PROXY_CPU (3 nodes: nodes 1-2 on CPU $PEERS_CPU); wrk and upstream on CPU $LOAD_CPU; 3 nodes: wrk talks to node 3, a follower)"
echo "(1-minute load average at start: $load_at_start)"
if ((LOW_PACE_MS > 0 && LOW_CONNS > 0 && LOW_CONNS != CONNS)); then
    echo "(c=$LOW_CONNS runs paced: each connection waits a random 0..$((2 * LOW_PACE_MS)) ms before each request)"
fi
echo "($ROUNDS round(s) per row, the order of the two runs alternating; req/s and p99 are medians,"
echo " ratio and p99 added the medians of each round's pair)"
for c in "$CONNS" "$LOW_CONNS"; do
    ((c > 0)) || continue
    echo
    printf '%-5s | %6s | %8s | %12s | %12s | %7s | %11s | %11s | %10s | %11s | %s\n' \
        nodes keys "keys made" "no-quota r/s" "quota r/s" ratio "p99 no-q ms" "p99 quota ms" "p99 added" "raft wr/s" "c=$c note"
    printf '%s\n' "------+--------+----------+--------------+--------------+---------+-------------+-------------+------------+-------------+-----"
    for nodes in ${NODES//,/ }; do
        for k in $(tr ',' '\n' <<<"$KEYS" | sort -n | uniq); do
            a="$nodes:$k:noquota:$c" b="$nodes:$k:quota:$c"
            if ok "$a" && ok "$b"; then
                read -r ratio added <<<"$(pair "$nodes" "$k" "$c")"
                printf '%-5s | %6s | %7ss | %12.0f | %12.0f | %6.2fx | %11s | %11s | %+9.3f | %11s | %s\n' \
                    "$nodes" "$k" "${KEY_SECS["$nodes:$k"]:-?}" "$(field "$a" 2)" "$(field "$b" 2)" \
                    "${ratio:-0}" "$(ms "$(field "$a" 4)")" "$(ms "$(field "$b" 4)")" \
                    "$(awk -v d="${added:-0}" 'BEGIN {print d / 1000}')" \
                    "$(field "$b" last)" "$(note "$a")$(note "$b")"
            else
                printf '%-5s | %6s | %7ss | %12s | %12s | %7s | %11s | %11s | %10s | %11s | %s\n' \
                    "$nodes" "$k" "${KEY_SECS["$nodes:$k"]:-?}" "$(field "$a" 1)" "$(field "$b" 1)" - - - - \
                    "$(field "$b" last)" "no-quota: ${RESULT["$a"]:-none}; quota: ${RESULT["$b"]:-none}"
            fi
        done
    done
done
