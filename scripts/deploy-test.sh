#!/usr/bin/env bash
# Tests the deployment artifacts in deploy/ for real (about 1.5 minutes; the first run
# also makes a Debian rootfs with debootstrap, ~40 s, cached). deploy/README.md,
# "Testing", lists every check:
#  1. systemd: `systemd-analyze verify`, then the units run under systemd (PID 1 in a
#     container): start with bootstrap, restart after kill -9, backup, exit 64;
#  2. the Kubernetes manifests against the API schemas, and the StatefulSet's pods run
#     as containers on the Dockerfile's runtime stage; the LB configs; the node configs;
#  3. the docker-compose cluster on images built FROM scratch out of the local debug
#     binaries (deploy/docker/ci-image.sh): forms by itself, REST and LLM traffic through
#     HAProxy, the admin API absent from the data-plane port, outsiders (wrong join token,
#     another CA) refused, a paused node taken out by
#     the health check, the leader stopped and restarted and catching up, backup and
#     restore, then `down -v`.
# Needs the binaries built (`cargo build --workspace --all-targets`), Docker with
# docker-compose, and scripts/test-deps.sh. Cleans up after itself on any exit; ends
# after DEPLOY_TEST_TIMEOUT seconds (default 300).
set -euo pipefail
# The whole test is bounded: past the limit, `timeout` sends SIGTERM (the clean-up still
# runs), and SIGKILL a minute later.
if [ -z "${DEPLOY_TEST_BOUNDED:-}" ]; then
  DEPLOY_TEST_BOUNDED=1 exec timeout --kill-after=60 "${DEPLOY_TEST_TIMEOUT:-300}" "$0" "$@"
fi
cd "$(dirname "$0")/.."
repo=$PWD

: "${CARGO_TARGET_DIR:=$HOME/.cache/raftgate-target}"
bin=${RAFTGATE_BIN:-$CARGO_TARGET_DIR/debug/raftgate}
upstream_bin=$(dirname "$bin")/raftgate-upstream
venv=${RAFTGATE_VENV:-$HOME/.cache/raftgate-venv}

started=$SECONDS
say() { echo "deploy-test [$((SECONDS - started))s] $*"; }
fail() { echo "deploy-test: FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); say "ok: $*"; }

for f in "$bin" "$upstream_bin"; do
  [ -x "$f" ] || fail "$f is missing: run cargo build --workspace --all-targets first"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/raftgate-deploy-test.XXXXXX")
project="rgdeploytest$$"
tag="raftgate-deploy-test-$$"
images=("$tag-node:ci" "$tag-lb:ci" "$tag-echo:ci" "$tag-systemd:ci" "$tag-runtime:ci")
containers=()
volumes=()
networks=()
pids=()
compose_up=false

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if $compose_up; then
    if [ $rc -ne 0 ]; then
      echo "deploy-test: last log lines of the compose services:" >&2
      dc logs --no-color --tail 30 >&2 2>/dev/null || true
    fi
    dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
  fi
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null
  [ ${#containers[@]} -eq 0 ] || docker rm -f "${containers[@]}" >/dev/null 2>&1
  [ ${#volumes[@]} -eq 0 ] || docker volume rm -f "${volumes[@]}" >/dev/null 2>&1
  [ ${#networks[@]} -eq 0 ] || docker network rm "${networks[@]}" >/dev/null 2>&1
  docker rmi -f "${images[@]}" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  say "done"
  if [ $rc -eq 0 ]; then
    echo "deploy-test: $passed passed, 0 failed"
  else
    echo "deploy-test: $passed passed, 1 failed" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'echo "deploy-test: interrupted (DEPLOY_TEST_TIMEOUT=${DEPLOY_TEST_TIMEOUT:-300}s?)" >&2; exit 130' INT TERM

# wait_for SECS WHAT CMD...: runs CMD every 0.5 s until it succeeds; fails the test
# after SECS with CMD's last output.
wait_for() {
  local secs=$1 what=$2 end=$((SECONDS + $1))
  shift 2
  until "$@" >"$tmp/wait.out" 2>&1; do
    [ $SECONDS -lt $end ] || fail "$what: not within ${secs}s; last try: $(tail -c 600 "$tmp/wait.out")"
    sleep 0.5
  done
}

# ---------------------------------------------------------------- 1. systemd units
say "systemd-analyze verify deploy/systemd/* (ExecStart pointed at $bin)"
mkdir -p "$tmp/units"
for unit in deploy/systemd/*.service deploy/systemd/*.timer; do
  sed "s#/usr/local/bin/raftgate#$bin#g" "$unit" >"$tmp/units/$(basename "$unit")"
done
# Any warning (unknown key, bad value, missing binary) fails the check, not only errors.
out=$(cd "$tmp/units" && systemd-analyze verify ./*.service ./*.timer 2>&1) \
  || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"
grep -q '^ProtectSystem=strict' deploy/systemd/raftgate.service || fail "raftgate.service is not ProtectSystem=strict"
ok "systemd units verify cleanly"

# The units for real: a container with systemd as PID 1 (a Debian rootfs made once with
# debootstrap and cached), the binary installed as the guide says, the node started by
# the hardened unit, killed, restarted by it; the backup service run once.
sd_rootfs=${RAFTGATE_SYSTEMD_ROOTFS:-$HOME/.cache/raftgate-systemd-rootfs.tar}
if [ ! -s "$sd_rootfs" ]; then
  command -v debootstrap >/dev/null || fail "debootstrap is missing (scripts/test-deps.sh installs it)"
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  say "building a $suite rootfs with systemd for the unit test (debootstrap; cached in $sd_rootfs)"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,ca-certificates \
    "$suite" "$tmp/sdroot" >"$tmp/debootstrap.log" 2>&1 || fail "debootstrap: $(tail -5 "$tmp/debootstrap.log")"
  mkdir -p "$(dirname "$sd_rootfs")"
  tar -C "$tmp/sdroot" -cf "$sd_rootfs.tmp" . && mv "$sd_rootfs.tmp" "$sd_rootfs"
  rm -rf "$tmp/sdroot"
fi
say "systemd in a container: install and start deploy/systemd/raftgate.service"
docker import "$sd_rootfs" "${images[3]}" >/dev/null
sd="$tag-systemd"
containers+=("$sd")
# systemd as PID 1 needs to mount its cgroups and namespaces: SYS_ADMIN, no seccomp.
# (This machine has cgroup v1; the v2 variant is untested here.)
cgroups=(-v /sys/fs/cgroup:/sys/fs/cgroup:ro)
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && cgroups=(--cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw)
docker run -d --name "$sd" --label raftgate-deploy-test --cap-add SYS_ADMIN \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --tmpfs /run --tmpfs /run/lock --tmpfs /tmp "${cgroups[@]}" \
  "${images[3]}" /sbin/init >/dev/null
in_sd() { docker exec "$sd" sh -c "$1"; }
wait_for 30 "systemd running in the container" in_sd 'systemctl is-system-running | grep -qE "running|degraded"'
"$bin" certs --out "$tmp/sdpki" --node node1=127.0.0.1,localhost >/dev/null 2>&1
docker cp "$bin" "$sd:/usr/local/bin/raftgate"
in_sd 'useradd --system --home-dir /var/lib/raftgate --shell /usr/sbin/nologin raftgate &&
       install -d -m 0750 -o root -g raftgate /etc/raftgate /etc/raftgate/certs &&
       install -d -m 0700 -o raftgate -g raftgate /var/backups/raftgate'
for f in ca.pem node1.pem node1-key.pem; do docker cp "$tmp/sdpki/$f" "$sd:/etc/raftgate/certs/$f"; done
sed 's/^advertise_host = .*/advertise_host = "127.0.0.1"/' deploy/config/node1.toml >"$tmp/sd-node1.toml"
docker cp "$tmp/sd-node1.toml" "$sd:/etc/raftgate/raftgate.toml"
for unit in deploy/systemd/*.service deploy/systemd/*.timer; do docker cp "$unit" "$sd:/etc/systemd/system/"; done
in_sd 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" >/etc/raftgate/secret.key &&
       printf "RAFTGATE_JOIN_TOKEN=%s\nRAFTGATE_BOOTSTRAP=true\n" "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")" >/etc/raftgate/raftgate.env &&
       chown -R root:raftgate /etc/raftgate && chmod 0640 /etc/raftgate/certs/* /etc/raftgate/secret.key /etc/raftgate/raftgate.env /etc/raftgate/raftgate.toml &&
       systemctl daemon-reload && systemctl enable --now raftgate 2>/dev/null'
sd_ready() { in_sd 'curl -fsS --max-time 2 --cacert /etc/raftgate/certs/ca.pem https://localhost:9080/readyz'; }
wait_for 30 "the node started by raftgate.service is ready (HTTPS /readyz)" sd_ready
in_sd 'test "$(stat -c "%U %a" /var/lib/raftgate/admin-token)" = "raftgate 600" && test "$(stat -c "%U %a" /var/lib/raftgate)" = "raftgate 700"' \
  || fail "bootstrap's admin-token or the data dir has the wrong owner or mode"
in_sd 'test "$(stat -c %U "/proc/$(systemctl show -p MainPID --value raftgate)")" = raftgate' || fail "the node does not run as user raftgate"
ok "raftgate.service runs the node as user raftgate under its hardening; bootstrap wrote admin-token (0600)"
in_sd 'kill -9 "$(systemctl show -p MainPID --value raftgate)"'
sd_restarted() { in_sd 'test "$(systemctl show -p NRestarts --value raftgate)" = 1' && sd_ready; }
wait_for 30 "raftgate.service restarts the node after kill -9" sd_restarted
ok "after kill -9 the unit restarted the node (Restart=on-failure) and it is ready again"
in_sd 'printf "RAFTGATE_SERVER=https://localhost:9080\nRAFTGATE_CA_CERT=/etc/raftgate/certs/ca.pem\nRAFTGATE_TOKEN=%s\n" "$(cat /var/lib/raftgate/admin-token)" >/etc/raftgate/backup.env &&
       chown root:raftgate /etc/raftgate/backup.env && chmod 0640 /etc/raftgate/backup.env &&
       systemctl enable raftgate-backup.timer 2>/dev/null && systemctl start raftgate-backup.service &&
       test "$(head -c 8 /var/backups/raftgate/raftgate-*.backup)" = RGBACKUP' \
  || fail "raftgate-backup.service did not write a backup: $(in_sd 'journalctl -u raftgate-backup --no-pager | tail -5')"
ok "raftgate-backup.service wrote a verified backup to /var/backups/raftgate"
in_sd 'echo "bogus_key = 1" >>/etc/raftgate/raftgate.toml; systemctl restart raftgate 2>/dev/null; sleep 3
       test "$(systemctl show -p ExecMainStatus --value raftgate)" = 64 && test "$(systemctl show -p NRestarts --value raftgate)" = 0' \
  || fail "a configuration error (exit 64) should stop the unit without restarts"
ok "a configuration error exits 64 and the unit does not restart it"
say "systemd-analyze security raftgate.service: $(in_sd 'systemd-analyze security raftgate --no-pager 2>/dev/null | tail -1' | sed 's/.*: //')"
docker rm -f "$sd" >/dev/null

# ---------------------------------------------------------------- 2. manifests, LB configs
say "kubernetes-validate --strict deploy/k8s"
k8s=()
for f in deploy/k8s/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || k8s+=("$f")
done
"$venv/bin/kubernetes-validate" --strict --quiet "${k8s[@]}" || fail "Kubernetes manifests do not validate"
for f in $(grep -o '^  - .*\.yaml' deploy/k8s/kustomization.yaml | cut -c5-); do
  [ -f "deploy/k8s/$f" ] || fail "kustomization.yaml lists $f, which does not exist"
done
ok "${#k8s[@]} Kubernetes manifests validate (strict)"

# The user-facing image cannot be built here (no base image can be pulled), but its
# runtime stage can: the Dockerfile's second stage, FROM the debootstrap rootfs above
# instead of debian:bookworm-slim and with the local binary instead of the builder's.
# Then the StatefulSet's pods run on it as Kubernetes would start them: the manifest's
# command and env (fieldRefs, $(VAR) references, Secrets), its user, read-only root and
# mounts, one container per pod with the peer DNS names of the headless Service.
say "Dockerfile runtime stage on a debootstrap'd base; StatefulSet pods as containers"
mkdir -p "$tmp/rtctx"
cp "$bin" "$tmp/rtctx/raftgate"
awk -v base="${images[3]}" '
  /^FROM / { n++ } n == 2 {
    if (/^FROM /) $0 = "FROM " base
    sub(/^COPY --from=builder \/usr\/local\/bin\/raftgate /, "COPY raftgate ")
    print
  }' deploy/docker/Dockerfile >"$tmp/rtctx/Dockerfile"
grep -q '^COPY raftgate /usr/local/bin/raftgate' "$tmp/rtctx/Dockerfile" || fail "the Dockerfile's runtime stage no longer copies the binary from the builder"
docker build -q --label raftgate-deploy-test -t "${images[4]}" "$tmp/rtctx" >/dev/null 2>"$tmp/rt-build.log" \
  || fail "building the Dockerfile's runtime stage: $(tail -5 "$tmp/rt-build.log")"
[ "$(docker image inspect --format '{{.Config.User}}' "${images[4]}")" = 10001:10001 ] || fail "the image does not run as 10001"
k8s_hosts() { echo "raftgate-$1.raftgate-peers.raftgate.svc.cluster.local,raftgate-$1.raftgate-peers.raftgate.svc"; }
"$bin" certs --out "$tmp/k8spki" --node raftgate-0="$(k8s_hosts 0)" --node raftgate-1="$(k8s_hosts 1)" \
  --node raftgate-2="$(k8s_hosts 2)" >/dev/null 2>&1 || fail "raftgate certs for the pods"
# The raftgate-tls Secret as the kubelet mounts it: defaultMode 0440, group = fsGroup.
mkdir -p "$tmp/k8s-tls"
cp "$tmp/k8spki/ca.pem" "$tmp/k8spki"/raftgate-[012].pem "$tmp/k8spki"/raftgate-[012]-key.pem "$tmp/k8s-tls/"
chgrp -R 10001 "$tmp/k8s-tls" && chmod 0440 "$tmp/k8s-tls"/* && chmod 0755 "$tmp/k8s-tls"
k8s_net="$tag-k8s"
docker network create --label raftgate-deploy-test "$k8s_net" >/dev/null
networks+=("$k8s_net")
for i in 0 1 2; do containers+=("$tag-raftgate-$i"); done
volumes+=("$tag-raftgate-0" "$tag-raftgate-1" "$tag-raftgate-2")
"$venv/bin/python" - "$tag" "${images[4]}" "$k8s_net" "$tmp/k8s-tls" "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" <<'PY' || fail "starting the StatefulSet's pods"
import re, subprocess, sys, yaml
tag, image, net, tls, join_token, secret_key = sys.argv[1:]
ss = next(d for d in yaml.safe_load_all(open("deploy/k8s/statefulset.yaml")) if d["kind"] == "StatefulSet")
ns, pod_spec = ss["metadata"]["namespace"], ss["spec"]["template"]["spec"]
c = pod_spec["containers"][0]
ctx = pod_spec["securityContext"]
secrets = {("raftgate-join", "join-token"): join_token, ("raftgate-join", "secret-key"): secret_key}
for i in range(ss["spec"]["replicas"]):
    pod = f"{ss['metadata']['name']}-{i}"
    env = {}
    for e in c["env"]:
        if "value" in e:
            # Kubernetes expands $(VAR) with variables defined earlier in the list.
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), e["value"])
        else:
            src = e["valueFrom"]
            if "fieldRef" in src:
                env[e["name"]] = {"metadata.name": pod, "metadata.namespace": ns}[src["fieldRef"]["fieldPath"]]
            else:
                ref = src["secretKeyRef"]
                if (ref["name"], ref["key"]) in secrets:
                    env[e["name"]] = secrets[(ref["name"], ref["key"])]
                elif not ref.get("optional"):
                    sys.exit(f"no value for secret {ref}")
    args = ["docker", "run", "-d", "--restart", "always", "--name", f"{tag}-{pod}", "--label", "raftgate-deploy-test",
            "--network", net, "--network-alias", f"{pod}.{ss['spec']['serviceName']}.{ns}.svc.cluster.local",
            "--network-alias", f"{pod}.{ss['spec']['serviceName']}.{ns}.svc", "--hostname", pod,
            "--user", f"{ctx['runAsUser']}:{ctx['runAsGroup']}", "--group-add", str(ctx["fsGroup"])]
    sc = c["securityContext"]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if "ALL" in sc.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", "ALL"]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    args += ["-v", f"{tag}-{pod}:{mounts['data']['mountPath']}",
             "-v", f"{tls}:{mounts['certs']['mountPath']}:ro", "--tmpfs", mounts["tmp"]["mountPath"]]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    args += ["--entrypoint", c["command"][0], image] + c["command"][1:]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
PY
pod() { echo "$tag-raftgate-$1"; }
k8s_token() { docker exec "$(pod 0)" cat /var/lib/raftgate/admin-token; }
wait_for 60 "raftgate-0 bootstraps (admin-token)" k8s_token
k8s_voters() {
  docker exec -e RAFTGATE_TOKEN="$(k8s_token)" "$(pod 0)" raftgate cluster status --json >"$tmp/k8s-status.json" || return 1
  jq -e '([.nodes[] | select(.voter and .reachable)] | length == 3)
         and ([.nodes[].applied_index] | unique | length == 1)' "$tmp/k8s-status.json"
}
wait_for 90 "the three pods form a cluster (raftgate-1 and -2 join raftgate-0)" k8s_voters
[ "$(jq -r '[.nodes[].id] | sort | join(",")' "$tmp/k8s-status.json")" = "1,2,3" ] || fail "pods are not nodes 1-3"
jq -e '[.nodes[].admin_url] | all(test("^https://raftgate-[012].raftgate-peers.raftgate.svc.cluster.local:9080$"))' "$tmp/k8s-status.json" >/dev/null \
  || fail "pods do not advertise their peer DNS names: $(jq -c '[.nodes[].admin_url]' "$tmp/k8s-status.json")"
ok "StatefulSet pods (manifest command, env, user, read-only root) formed a 3-voter cluster over their peer DNS names"
healthy() { [ "$(docker inspect --format '{{.State.Health.Status}}' "$(pod 1)")" = healthy ]; }
wait_for 30 "the image's HEALTHCHECK reports healthy" healthy
ok "the Dockerfile's HEALTHCHECK passes on a running node"
docker rm -f "$(pod 0)" "$(pod 1)" "$(pod 2)" >/dev/null

say "certificates for the config checks: raftgate certs"
"$bin" certs --out "$tmp/certs" --node lb-check=localhost >/dev/null
[ -s "$tmp/certs/ca.pem" ] || fail "raftgate certs wrote no ca.pem"
say "haproxy -c deploy/lb/haproxy.cfg deploy/docker/haproxy.cfg"
for cfg in deploy/lb/haproxy.cfg deploy/docker/haproxy.cfg; do
  sed -e "s#ca-file [^ ]*#ca-file $tmp/certs/ca.pem#g" "$cfg" >"$tmp/haproxy.cfg"
  out=$(haproxy -c -f "$tmp/haproxy.cfg" 2>&1) || fail "haproxy -c $cfg: $out"
  # Any warning fails, but for the compose file's server names, which only resolve
  # inside the compose network.
  warnings=$(grep -E 'WARNING|ALERT' <<<"$out" | grep -v 'could not resolve address' || true)
  [ -z "$warnings" ] || fail "haproxy -c $cfg warned: $warnings"
done
ok "HAProxy configs are valid"
if command -v nginx >/dev/null 2>&1; then
  sed -e "s#/var/log/nginx#$tmp#g; s#/run/nginx.pid#$tmp/nginx.pid#" deploy/lb/nginx.conf >"$tmp/nginx.conf"
  out=$(nginx -t -c "$tmp/nginx.conf" 2>&1) || fail "nginx -t deploy/lb/nginx.conf: $out"
  warnings=$(grep -E '\[(warn|emerg|alert|crit)\]' <<<"$out" | grep -v 'could not open error log' || true)
  [ -z "$warnings" ] || fail "nginx -t deploy/lb/nginx.conf warned: $warnings"
  ok "nginx config is valid"
else
  say "nginx is not installed: deploy/lb/nginx.conf not checked"
fi

say "deploy/config/node{1,2,3}.toml: raftgate serve --config (paths and addresses overridden)"
"$bin" certs --out "$tmp/certs" --node cfg=127.0.0.1 >/dev/null
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/secret.key"
for n in 1 2 3; do
  extra=()
  # The join target (10.0.0.1) is not reachable from here: point it at a closed port,
  # the node then retries in the background while it serves.
  grep -q '^join' "deploy/config/node$n.toml" && extra=(--join https://127.0.0.1:9)
  "$bin" serve --config "deploy/config/node$n.toml" --data-dir "$tmp/cfg$n" \
    --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --raft-addr 127.0.0.1:0 --advertise-host 127.0.0.1 \
    --tls-ca "$tmp/certs/ca.pem" --tls-cert "$tmp/certs/cfg.pem" --tls-key "$tmp/certs/cfg-key.pem" \
    --secret-key-file "$tmp/secret.key" --join-token "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    "${extra[@]}" >"$tmp/cfg$n.log" 2>&1 &
  pids+=($!)
done
sleep 2
for n in 1 2 3; do
  pid=${pids[$((n - 1))]}
  kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; fail "node$n.toml: serve exited: $(tail -5 "$tmp/cfg$n.log")"; }
  kill "$pid"; wait "$pid" 2>/dev/null || true
  grep -qi 'config error' "$tmp/cfg$n.log" && fail "node$n.toml: $(grep -i 'config error' "$tmp/cfg$n.log")"
done
pids=()
ok "the three node configs load and the nodes start with them"

# ---------------------------------------------------------------- 3. docker-compose
say "building images FROM scratch: node, lb (Debian's haproxy), echo upstream"
deploy/docker/ci-image.sh raftgate "${images[0]}" "$bin"
deploy/docker/ci-image.sh haproxy "${images[1]}"
deploy/docker/ci-image.sh upstream "${images[2]}" "$upstream_bin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
admin_port=$(free_port)
export RAFTGATE_IMAGE=${images[0]} HAPROXY_IMAGE=${images[1]} UPSTREAM_IMAGE=${images[2]}
export RAFTGATE_HTTP_PORT="127.0.0.1:$http_port" RAFTGATE_ADMIN_PORT=$admin_port
RAFTGATE_JOIN_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
export RAFTGATE_JOIN_TOKEN
RAFTGATE_SECRET_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export RAFTGATE_SECRET_KEY
dc() {
  timeout 120 docker-compose -p "$project" \
    -f "$repo/deploy/docker/docker-compose.yml" -f "$repo/deploy/docker/docker-compose.ci.yml" "$@"
}
cid() { dc ps -q "$1"; }

compose_up=true
say "docker-compose run --rm certs"
dc run --rm certs >/dev/null 2>&1 || { dc run --rm certs; fail "the certs service failed"; }
say "docker-compose up -d"
dc up -d >/dev/null 2>&1 || { dc up -d; fail "docker-compose up failed"; }

# The CA, for the CLI on this machine (the admin port of the LB is TLS, passed through).
data="http://127.0.0.1:$http_port"
admin="https://localhost:$admin_port"
docker cp "$(cid node1):/certs/ca.pem" "$tmp/ca.pem" 2>/dev/null \
  || fail "no ca.pem in the certs volume"


say "waiting for node1 to bootstrap (admin-token in its volume)"
wait_for 60 "node1 writes /var/lib/raftgate/admin-token" docker cp "$(cid node1):/var/lib/raftgate/admin-token" "$tmp/admin-token"
RAFTGATE_TOKEN=$(tr -d '[:space:]' <"$tmp/admin-token")
[ -n "$RAFTGATE_TOKEN" ] || fail "admin-token is empty"
export RAFTGATE_TOKEN RAFTGATE_SERVER=$admin RAFTGATE_CA_CERT=$tmp/ca.pem
rg() { timeout 20 "$bin" "$@"; }

status_json() { rg cluster status --json >"$tmp/status.json"; }
# three_voters [MIN_APPLIED]: three reachable voters, all at the same applied index.
three_voters() {
  status_json || return 1
  cat "$tmp/status.json"
  jq -e '([.nodes[] | select(.voter and .reachable)] | length == 3)
         and ([.nodes[].applied_index] | unique | length == 1)' "$tmp/status.json" >/dev/null
}
say "waiting for three voters (node2 and node3 join node1 with the join token)"
wait_for 90 "three voters at the same applied index" three_voters
cluster_id=$(jq -r .cluster_id "$tmp/status.json")
ok "the cluster formed by itself: 3 voters, cluster $cluster_id"

adm() { # adm METHOD PATH [JSON]: admin call through the LB; prints the body, fails on non-2xx
  local code
  code=$(curl -sS -o "$tmp/adm.out" -w '%{http_code}' --max-time 20 --cacert "$tmp/ca.pem" \
    -X "$1" -H "authorization: Bearer $RAFTGATE_TOKEN" -H 'content-type: application/json' \
    ${3:+--data "$3"} "$admin$2") || return 1
  [[ $code == 2* ]] || { echo "$1 $2 -> $code $(cat "$tmp/adm.out")" >&2; return 1; }
  cat "$tmp/adm.out"
}
say "configuring a REST route to the echo upstream and an LLM model on the mock provider"
adm POST /admin/v1/tenants '{"id": "deploy", "name": "Deploy test"}' >/dev/null || fail "create tenant"
adm POST /admin/v1/consumers '{"id": "deploy-app", "tenant": "deploy", "name": "Deploy test app"}' >/dev/null || fail "create consumer"
adm POST /admin/v1/upstreams '{"id": "echo", "targets": [{"address": "echo:8091"}]}' >/dev/null || fail "create upstream"
adm POST /admin/v1/services '{"id": "deploy-svc", "tenant": "deploy", "name": "Deploy", "state": "published"}' >/dev/null || fail "create service"
adm POST /admin/v1/routes '{"id": "echo", "tenant": "deploy", "service": "deploy-svc", "path": "/echo", "target": {"upstream": "echo"}, "policies": [{"key_auth": {}}]}' >/dev/null || fail "create route"
adm POST /admin/v1/subscriptions '{"id": "deploy-app-svc", "consumer": "deploy-app", "service": "deploy-svc"}' >/dev/null || fail "create subscription"
adm POST /admin/v1/providers '{"id": "mock", "type": "mock"}' >/dev/null || fail "create provider"
adm POST /admin/v1/models '{"id": "deploy-model", "deployments": [{"provider": "mock", "model": "mock-1"}]}' >/dev/null || fail "create model"
adm POST /admin/v1/permissions '{"id": "deploy-app-model", "consumer": "deploy-app", "target": {"model": "deploy-model"}}' >/dev/null || fail "create permission"
api_key=$(adm POST /admin/v1/consumers/deploy-app/keys '{"id": "deploy-key", "name": "deploy"}' | jq -r .key) \
  || fail "create API key"

# rest N: N REST calls through the LB, each must answer 200 from the echo upstream.
rest() {
  local i code
  for ((i = 0; i < $1; i++)); do
    code=$(curl -sS -o "$tmp/rest.out" -w '%{http_code}' --max-time 10 \
      -H "authorization: Bearer $api_key" "$data/echo/hello?i=$i") || { echo "REST call $i: no answer" >&2; return 1; }
    [ "$code" = 200 ] || { echo "REST call $i: $code $(head -c 300 "$tmp/rest.out")" >&2; return 1; }
    jq -e '.server == "echo" and .path == "/echo/hello"' "$tmp/rest.out" >/dev/null \
      || { echo "REST call $i: unexpected body $(head -c 300 "$tmp/rest.out")" >&2; return 1; }
  done
}
# llm N: N chat completions through the LB, each must answer 200 with the mock's reply.
llm() {
  local i code
  for ((i = 0; i < $1; i++)); do
    code=$(curl -sS -o "$tmp/llm.out" -w '%{http_code}' --max-time 10 \
      -H "authorization: Bearer $api_key" -H 'content-type: application/json' \
      --data "{\"model\": \"deploy-model\", \"messages\": [{\"role\": \"user\", \"content\": \"hello deploy $i\"}]}" \
      "$data/v1/chat/completions") || { echo "LLM call $i: no answer" >&2; return 1; }
    [ "$code" = 200 ] || { echo "LLM call $i: $code $(head -c 300 "$tmp/llm.out")" >&2; return 1; }
    jq -e --arg want "hello deploy $i" '.choices[0].message.content | contains($want)' "$tmp/llm.out" >/dev/null \
      || { echo "LLM call $i: unexpected body $(head -c 300 "$tmp/llm.out")" >&2; return 1; }
  done
}
# Every node serves the new config once it has applied it: wait until calls through the
# LB (spread over the nodes) succeed, then require every one of a batch to.
wait_for 20 "REST route served through the LB" rest 6
rest 30 || fail "REST through the load balancer"
ok "30 REST calls through the LB: 200 from the echo upstream"
llm 10 || fail "LLM through the load balancer"
ok "10 chat completions through the LB: 200 with the mock provider's answer"

say "the admin API must not be served on the data-plane port"
for path in /admin/v1/routes /admin/v1/cluster /readyz; do
  code=$(curl -sS -o "$tmp/x.out" -w '%{http_code}' --max-time 10 -H "authorization: Bearer $RAFTGATE_TOKEN" "$data$path")
  [ "$code" = 404 ] || fail "GET :8080$path answered $code (want 404): $(head -c 200 "$tmp/x.out")"
  grep -q '"members"\|"items"\|"ready"' "$tmp/x.out" && fail "GET :8080$path returned admin content"
done
ok "admin paths answer 404 on the data-plane port"

# ---------------------------------------------------------------- outsiders
# A fourth node on the compose network must not get in: with a wrong join token, or
# with the right token but a certificate from another CA. `serve --join` exits on both.
say "a node with a wrong join token, then one with another CA's certificate, try to join"
"$bin" certs --out "$tmp/other-ca" --node intruder=intruder >/dev/null 2>&1
intruder() { # intruder CERT_DIR JOIN_TOKEN: runs a node that tries to join node1; prints its log
  timeout 60 docker run --rm --user 0:0 --network "${project}_default" --network-alias intruder \
    --label raftgate-deploy-test -v "$1:/pki:ro" -v "$2:/ca:ro" \
    -e RAFTGATE_NODE_ID=9 -e RAFTGATE_ADVERTISE_HOST=intruder -e RAFTGATE_DATA_DIR=/tmp/data \
    -e RAFTGATE_TLS_CA=/ca/ca.pem -e RAFTGATE_TLS_CERT=/pki/intruder.pem -e RAFTGATE_TLS_KEY=/pki/intruder-key.pem \
    -e RAFTGATE_JOIN=https://node1:9080 -e RAFTGATE_JOIN_TOKEN="$3" -e RAFTGATE_SECRET_KEY "${images[0]}" 2>&1
}
# The cluster's CA in a directory of its own (the node's CA must match its certificate).
mkdir -p "$tmp/cluster-ca" "$tmp/other-ca-only"
cp "$tmp/ca.pem" "$tmp/cluster-ca/ca.pem"
cp "$tmp/other-ca/ca.pem" "$tmp/other-ca-only/ca.pem"
# Wrong token, with a certificate the cluster would trust: issued from the cluster's CA
# key, which the certs volume holds (the demo's trade-off, deploy/README.md).
docker cp "$(cid node1):/certs/ca-key.pem" "$tmp/cluster-ca/ca-key.pem" 2>/dev/null \
  || fail "no ca-key.pem in the certs volume"
"$bin" certs --out "$tmp/cluster-ca" --node intruder=intruder >/dev/null 2>&1 || fail "issuing an intruder certificate"
out=$(intruder "$tmp/cluster-ca" "$tmp/cluster-ca" "wrong-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')") \
  && fail "a node with a wrong join token started and stayed up: $(tail -3 <<<"$out")"
grep -q invalid_join_token <<<"$out" || fail "a wrong join token was not refused as invalid_join_token: $(tail -3 <<<"$out")"
out=$(intruder "$tmp/other-ca" "$tmp/other-ca-only" "$RAFTGATE_JOIN_TOKEN") \
  && fail "a node with another CA's certificate started and stayed up: $(tail -3 <<<"$out")"
grep -qE 'tls_error|untrusted_peer' <<<"$out" || fail "another CA's certificate was not refused for TLS: $(tail -3 <<<"$out")"
say "  $(grep -oE 'cannot join[^"]*' <<<"$out" | tail -1 | cut -c1-200)"
status_json || fail "cluster status"
[ "$(jq '.nodes | length' "$tmp/status.json")" = 3 ] || fail "the cluster has members other than node1-3: $(jq -c '[.nodes[].id]' "$tmp/status.json")"
ok "refused: a wrong join token (invalid_join_token) and another CA's certificate (TLS); still 3 members"

# ---------------------------------------------------------------- active health check
# A paused node keeps its address but stops answering: only the LB's /readyz check can
# take it out. Traffic must succeed once it has (fall 2 x inter 1s), and the node come
# back when the check passes again.
status_json || fail "cluster status"
follower=node$(jq -r '[.nodes[] | select(.role == "follower") | .id][0]' "$tmp/status.json")
say "docker pause $follower: the LB's /readyz check must take it out"
# lb_says REGEX: a line HAProxy logged since the last `mark`.
mark() { since=$(date +%s.%N); }
lb_says() { docker logs --since "$since" "$(cid lb)" 2>&1 | grep -E "$1"; }
mark
docker pause "$(cid "$follower")" >/dev/null
wait_for 15 "HAProxy's check marks data/$follower down" lb_says "data/$follower is DOWN, reason"
rest 20 || fail "REST through the LB with $follower paused"
mark
docker unpause "$(cid "$follower")" >/dev/null
wait_for 15 "HAProxy's check marks data/$follower up" lb_says "data/$follower is UP, reason: Layer7 check passed"
ok "paused $follower: marked down by the /readyz check, 20 REST calls all 200, back up after unpause"

# ---------------------------------------------------------------- node loss
leader=$(jq -r .leader_id "$tmp/status.json")
[[ $leader =~ ^[123]$ ]] || fail "no leader in the status: $(cat "$tmp/status.json")"
victim="node$leader"
say "docker stop $victim (the leader)"
mark
docker stop -t 10 "$(cid "$victim")" >/dev/null
# Once the LB has taken it out of rotation, every call must pass.
# (Docker's DNS drops a stopped container's name at once: HAProxy takes it out for that.)
wait_for 10 "HAProxy takes data/$victim out" lb_says "data/$victim is (DOWN|going DOWN)"
rest 40 || fail "REST through the LB with $victim stopped"
llm 10 || fail "LLM through the LB with $victim stopped"
ok "with $victim stopped: 40 REST + 10 LLM calls through the LB, all 200"

say "a write while $victim is down (a new leader is elected first)"
# A retried write whose first try did commit answers 409: the write is there all the same.
write_while_down() {
  adm POST /admin/v1/tenants '{"id": "written-while-down", "name": "written while a node was down"}' 2>"$tmp/write.err" \
    || grep -q ' 409 ' "$tmp/write.err"
}
wait_for 30 "admin write with $victim down" write_while_down
ok "admin write accepted by the two remaining nodes"

say "docker start $victim"
mark
docker start "$(cid "$victim")" >/dev/null
local_read() { docker exec -e RAFTGATE_TOKEN="$RAFTGATE_TOKEN" "$(cid "$victim")" raftgate get tenants written-while-down; }
wait_for 60 "$victim sees the write made while it was down" local_read
wait_for 60 "three voters at the same applied index after the restart" three_voters
[ "$(jq -r .cluster_id "$tmp/status.json")" = "$cluster_id" ] || fail "the cluster id changed after the restart (re-bootstrapped?)"
ok "$victim caught up: same applied index as the others, the write is on it, same cluster"
# Back in rotation once it resolves again and its /readyz answers 200.
wait_for 15 "HAProxy puts data/$victim back" lb_says "data/$victim (\('$victim'\) )?is UP"
rest 20 || fail "REST through the LB after the restart"
ok "20 REST calls after the restart, all 200"

say "backup and restore through the LB's admin port (raftgate backup / restore)"
rg backup --out "$tmp/cluster.backup" >/dev/null 2>"$tmp/backup.err" || fail "raftgate backup: $(cat "$tmp/backup.err")"
[ "$(head -c 8 "$tmp/cluster.backup")" = RGBACKUP ] || fail "the backup file does not start with RGBACKUP"
adm DELETE /admin/v1/tenants/written-while-down >/dev/null || fail "deleting a tenant after the backup"
rg restore --from "$tmp/cluster.backup" >/dev/null 2>"$tmp/restore.err" || fail "raftgate restore: $(cat "$tmp/restore.err")"
for n in node1 node2 node3; do
  restored() { docker exec -e RAFTGATE_TOKEN="$RAFTGATE_TOKEN" "$(cid "$n")" raftgate get tenants written-while-down; }
  wait_for 20 "$n has the tenant back after the restore" restored
done
ok "backup, delete, restore: the deleted tenant is back on all three nodes"

say "docker-compose down -v"
dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || fail "docker-compose down"
compose_up=false
ok "compose cluster torn down"
