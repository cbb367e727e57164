#!/usr/bin/env bash
# Installs what pocketkube and its test suite need on a Debian machine, as
# root. Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  runc                        # containers (node agent)
  containernetworking-plugins # pod networking: bridge, host-local, loopback, portmap
  busybox-static              # offline test images
  iptables                    # the CNI bridge (ipMasq) and portmap plugins
  nftables                    # service VIPs
  etcd-server etcd-client     # the --etcd-servers test and the bare control-plane benchmark
  iproute2 curl procps psmisc
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

command -v go >/dev/null || { echo "Go is required (https://go.dev/dl/), see go.mod for the version" >&2; exit 1; }

# The real kubectl binaries the tests drive. Debian has no kubectl package;
# machines with the Google Cloud CLI have one per minor version.
for v in 1.27 1.33; do
  [ -x "/usr/lib/google-cloud-sdk/bin/kubectl.$v" ] || echo "note: kubectl $v not found at /usr/lib/google-cloud-sdk/bin/kubectl.$v; tests for it will say so"
done
