#!/usr/bin/env bash
# Supply-chain checks of the dependency tree (scripts/test.sh runs it; docs/supply-chain.md):
# licenses, duplicate versions and sources with cargo-deny (deny.toml) always; known
# vulnerabilities (RustSec advisories) with cargo-deny and cargo-audit only when a local
# copy of the advisory database is given, because this CI has no route to GitHub:
#   RAFTGATE_ADVISORY_DB=/path/to/advisory-db scripts/supply-chain.sh
# (a `git clone https://github.com/rustsec/advisory-db`). Needs cargo-deny and
# cargo-audit (scripts/test-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# `--locked`: check exactly the committed Cargo.lock. License texts are read from the
# crate sources cargo has already downloaded; the crates.io index is reachable here.
cargo deny --locked check licenses bans sources

db="${RAFTGATE_ADVISORY_DB:-}"
if [ -z "$db" ]; then
  cat >&2 <<'EOF'
supply-chain: ADVISORIES NOT CHECKED: no RustSec advisory database here (GitHub is not
reachable from this CI). Set RAFTGATE_ADVISORY_DB to a clone of
https://github.com/rustsec/advisory-db to run `cargo deny check advisories` and
`cargo audit` (docs/supply-chain.md).
EOF
  exit 0
fi
if [ ! -d "$db/crates" ]; then
  echo "supply-chain: RAFTGATE_ADVISORY_DB=$db does not look like the advisory database (no crates/ folder)" >&2
  exit 1
fi
db="$(cd "$db" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# cargo-deny clones its database with git from the URL in deny.toml: git's `insteadOf`
# points that URL at the local copy (a plain folder is committed into a throwaway
# repository first), and the clone goes to a temporary db-path, not ~/.cargo.
src="$db"
if [ ! -d "$db/.git" ]; then
  src="$work/db-git"
  cp -r "$db" "$src"
  git -C "$src" init -q -b main && git -C "$src" add -A
  git -C "$src" -c user.name=raftgate -c user.email=ci@raftgate.invalid commit -qm snapshot
fi
awk -v path="$work/advisory-dbs" '
  { print }
  /^\[advisories\]/ { print "db-path = \"" path "\"" }
' deny.toml >"$work/deny.toml"
status=0
GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.file://$src.insteadOf" \
  GIT_CONFIG_VALUE_0="https://github.com/rustsec/advisory-db" \
  cargo deny --locked --config "$work/deny.toml" check advisories || status=1
# cargo-audit reads the folder as is; `--no-fetch`: never reach for GitHub. It fails on
# vulnerabilities and lists unmaintained or yanked crates as warnings (cargo-deny above
# fails on those only for our direct dependencies: `unmaintained = "workspace"`).
cargo audit --no-fetch --db "$db" --file Cargo.lock || status=1
if [ "$status" -eq 0 ]; then
  echo "supply-chain: advisories checked against $db ($(git -C "$src" log -1 --format='%h %cs' 2>/dev/null || echo 'unknown date'))"
fi
exit "$status"
