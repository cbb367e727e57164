#!/usr/bin/env bash
# Installs what pocketkube and its test suite need on a Debian machine, as
# root. Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  runc                        # containers (node agent), when bin/runc is not built
  gcc libseccomp-dev pkgconf  # make build's bin/runc (cgo, seccomp; hack/runc)
  containernetworking-plugins # pod networking: bridge, host-local, loopback, portmap
  busybox-static              # offline test images
  iptables                    # the CNI bridge (ipMasq) and portmap plugins
  nftables                    # service VIPs
  etcd-server etcd-client     # the --etcd-servers test and the bare control-plane benchmark
  iproute2 curl procps psmisc
  make                        # the README's two commands
  python3-kubernetes          # examples/python (the client library test), for /usr/bin/python3
)
# examples/node needs node and npm; Debian's nodejs unless a node is already
# installed (e.g. a newer one from NodeSource, whose nodejs package has npm).
if ! command -v node >/dev/null; then
  packages+=(nodejs npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "Installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's etcd-server package starts a service on 2379; nothing of ours uses it.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
fi

gover="$(sed -n 's/^go //p' "$(dirname "$0")/../go.mod")"
command -v go >/dev/null || { echo "Go $gover or newer is required on PATH (https://go.dev/dl/)" >&2; exit 1; }

# The real kubectl binaries the tests drive, one per minor version. Debian
# has no kubectl package, so they are built from upstream's Go modules,
# pinned and checksummed in hack/kubectl/v1.*/go.{mod,sum} (the Go module
# cache keeps the downloads), once, into a cache outside the repository.
bash "$(dirname "$0")/../hack/kubectl/build.sh" "${KUBECTL_CACHE:-/var/cache/pocketkube/kubectl}"
