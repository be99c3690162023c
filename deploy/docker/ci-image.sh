#!/usr/bin/env bash
# Builds the CI variants of the images FROM scratch out of binaries already on this
# machine, for CI machines that cannot pull base images (deploy/README.md, "Why a CI
# image"). Each image holds the binary, the shared libraries `ldd` lists (and the
# dynamic loader) at their usual paths, an empty /tmp, and directories owned by the
# unprivileged user the container runs as.
#
#   ci-image.sh raftgate TAG BIN    BIN = $CARGO_TARGET_DIR/debug/raftgate
#   ci-image.sh upstream TAG BIN    BIN = $CARGO_TARGET_DIR/debug/raftgate-upstream
#   ci-image.sh haproxy  TAG        the host's /usr/sbin/haproxy (Debian's haproxy)
#
# Every image gets the label raftgate-deploy-test (clean-up:
# docker rmi $(docker images -q --filter label=raftgate-deploy-test)).
set -euo pipefail

LABEL=raftgate-deploy-test
# The uid:gid of the runtime user in the user-facing Dockerfile, so volumes and mounted
# certificates work the same with both images.
RUN_AS=10001:10001

usage() { sed -n '8,10p' "$0" >&2; exit 64; }

# copy_with_libs BIN ROOTFS DEST: BIN at ROOTFS/DEST and its libraries at their paths.
copy_with_libs() {
  local bin=$1 rootfs=$2 dest=$3 line target
  install -D -m 0755 "$bin" "$rootfs$dest"
  # ldd lines: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`,
  # `/lib64/ld-linux-x86-64.so.2 (0x...)`, `linux-vdso.so.1 (0x...)` (kernel, skipped).
  local out
  if ! out=$(ldd "$bin" 2>&1); then
    case "$out" in *"not a dynamic executable"*) return 0 ;; esac
    echo "ci-image: ldd $bin failed: $out" >&2; return 1
  fi
  while IFS= read -r line; do
    target=${line#*=> }
    case "$target" in "not found"*) echo "ci-image: $bin: unresolved library: $line" >&2; return 1 ;; esac
    target=$(awk '{print $1}' <<<"$target")
    [[ $target == /* ]] || continue
    mkdir -p "$rootfs$(dirname "$target")"
    cp -L "$target" "$rootfs$target"
  done <<<"$out"
}

build() {
  local ctx=$1 tag=$2
  local log
  if ! log=$(docker build -q --label "$LABEL" -t "$tag" "$ctx" 2>&1); then
    echo "ci-image: docker build of $tag failed: $log" >&2; return 1
  fi
  echo "ci-image: built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'))" >&2
}

[ $# -ge 2 ] || usage
kind=$1 tag=$2
ctx=$(mktemp -d "${TMPDIR:-/tmp}/raftgate-ci-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/tmp" "$ctx/owned"
chmod 1777 "$ctx/rootfs/tmp"

case "$kind" in
  raftgate)
    [ $# -eq 3 ] || usage
    copy_with_libs "$3" "$ctx/rootfs" /usr/local/bin/raftgate
    mkdir -p "$ctx/owned/var/lib/raftgate" "$ctx/owned/certs"
    chmod 0700 "$ctx/owned/var/lib/raftgate"
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
COPY --chown=$RUN_AS owned/ /
USER $RUN_AS
ENV RAFTGATE_DATA_DIR=/var/lib/raftgate
VOLUME /var/lib/raftgate
EXPOSE 8080 9080 7080
ENTRYPOINT ["/usr/local/bin/raftgate"]
CMD ["serve"]
DOCKERFILE
    ;;
  upstream)
    [ $# -eq 3 ] || usage
    copy_with_libs "$3" "$ctx/rootfs" /usr/local/bin/raftgate-upstream
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
USER $RUN_AS
ENTRYPOINT ["/usr/local/bin/raftgate-upstream"]
CMD ["--listen", "0.0.0.0:8091", "--name", "echo"]
DOCKERFILE
    ;;
  haproxy)
    [ $# -eq 2 ] || usage
    command -v haproxy >/dev/null || { echo "ci-image: haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
    copy_with_libs "$(command -v haproxy)" "$ctx/rootfs" /usr/local/sbin/haproxy
    mkdir -p "$ctx/rootfs/usr/local/etc/haproxy"
    # Same config path and command as the official image (its CMD: haproxy -f PATH).
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
USER $RUN_AS
ENTRYPOINT ["/usr/local/sbin/haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
DOCKERFILE
    ;;
  *) usage ;;
esac
build "$ctx" "$tag"
