#!/usr/bin/env bash
# Fuzzes the admin API from its own OpenAPI document with schemathesis (scripts/test.sh
# runs it after the cargo tests): starts a one-node `raftgate dev` cluster of the debug
# binary on free loopback ports and runs schemathesis against /admin/v1/openapi.json,
# once with the admin token and once with a tenant admin's. Fails on any 5xx, on an
# answer whose body or content type does not match the documented one, on an operation
# that answers without a token, or when the node crashed or logged a panic. Bounded:
# SCHEMATHESIS_MAX_EXAMPLES cases per operation (default 25), SCHEMATHESIS_TIMEOUT
# seconds per pass (default 600). Reports (JUnit, NDJSON of every request) go to
# $CARGO_TARGET_DIR/schemathesis-report/{admin,tenant-admin}; docs/admin-api.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/raftgate-target}"
bin="${RAFTGATE_BIN:-$CARGO_TARGET_DIR/debug/raftgate}"
st="${RAFTGATE_SCHEMATHESIS:-${RAFTGATE_VENV:-$HOME/.cache/raftgate-venv}/bin/st}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
budget="${SCHEMATHESIS_TIMEOUT:-600}"
seed="${SCHEMATHESIS_SEED:-1}"
report="$CARGO_TARGET_DIR/schemathesis-report"

[ -x "$bin" ] || { echo "schemathesis: $bin is missing; build first (cargo build --workspace --all-targets)" >&2; exit 1; }
[ -x "$st" ] || { echo "schemathesis: $st is missing; run scripts/test-deps.sh" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d)"
node_pid=""
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

admin_port="$(free_port)"
admin="http://127.0.0.1:$admin_port"
# No failed-authentication budget: `ignored_auth` sends a bad token to every operation,
# and after 100 of them the node would answer 429 instead of 401 (as it should).
RAFTGATE_UNAUTHENTICATED_PER_SEC=0 "$bin" dev --data-dir "$work/data" --admin-addr "127.0.0.1:$admin_port" \
  --http-addr "127.0.0.1:$(free_port)" --raft-addr "127.0.0.1:$(free_port)" \
  --echo-addr "127.0.0.1:$(free_port)" >"$work/node.log" 2>&1 &
node_pid=$!

# `raftgate dev` writes the admin token once the cluster is initialized and the demo
# data (tenant, consumer, key, service, routes, models, ...) is loaded: real ids for the
# stateful phase to find.
for _ in $(seq 1 120); do
  [ -s "$work/data/admin-token" ] && grep -q 'dev node is up' "$work/node.log" && break
  kill -0 "$node_pid" 2>/dev/null || { echo "schemathesis: the node exited at start:" >&2; tail -30 "$work/node.log" >&2; exit 1; }
  sleep 0.5
done
[ -s "$work/data/admin-token" ] || { echo "schemathesis: the node did not come up in 60 s" >&2; tail -30 "$work/node.log" >&2; exit 1; }
token="$(cat "$work/data/admin-token")"

# Left out: join (502 by design: it calls the `via` URL, which does not answer) and
# adding members (a voter that does not exist stalls the one-node cluster under test);
# the chaos suite and chaos-tests/tests/ cover both. Leave and member removal are in:
# the last voter refuses to go (400).
fuzz() { # NAME TOKEN: one schemathesis pass with that bearer token
  echo "schemathesis: pass as $1"
  # From the scratch folder, with no example database kept between runs: the same seed
  # makes the same requests, and nothing (.schemathesis/) lands in the checkout.
  (cd "$work" && timeout --kill-after=10 "$budget" "$st" run "$admin/admin/v1/openapi.json" \
    --header "Authorization: Bearer $2" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance,ignored_auth \
    --exclude-path-regex '^/admin/v1/cluster/(join|members)$' \
    --max-examples "$max_examples" --seed "$seed" --workers 2 \
    --request-timeout 15 --suppress-health-check all \
    --report junit,ndjson --report-dir "$report/$1" \
    --generation-database none --output-truncate false)
}
# A tenant admin's token too: its scoping (own tenant only, 403s and hidden 404s) is a
# separate path through every handler. Minted first, while the demo tenant exists.
tenant_token="$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"role": "tenant-admin", "tenant": "demo", "subject": "schemathesis"}' \
  "$admin/admin/v1/tokens" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
rm -rf "$report"
status=0
fuzz admin "$token" || status=$?
if [ "$status" -eq 0 ] && kill -0 "$node_pid" 2>/dev/null; then
  fuzz tenant-admin "$tenant_token" || status=$?
fi

if ! kill -0 "$node_pid" 2>/dev/null; then
  echo "schemathesis: the node crashed during the run:" >&2
  tail -50 "$work/node.log" >&2
  exit 1
fi
if ! curl -fsS "$admin/readyz" >/dev/null; then
  echo "schemathesis: the node is up but not ready after the run" >&2
  status=1
fi
if grep -qE 'panicked at' "$work/node.log"; then
  echo "schemathesis: the node logged a panic:" >&2
  grep -E -A5 'panicked at' "$work/node.log" >&2
  status=1
fi
case "$status" in
  0) echo "schemathesis: no failures (report in $report)" ;;
  124|137) echo "schemathesis: did not finish in ${budget} s" >&2 ;;
  *) echo "schemathesis: failures (exit $status); report in $report, node log:" >&2; tail -20 "$work/node.log" >&2 ;;
esac
exit "$status"
