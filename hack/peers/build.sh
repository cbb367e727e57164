#!/usr/bin/env bash
# Builds the peers bench/peer_test.go measures pocketkube's node against,
# from upstream's Go modules pinned (and checksummed) in hack/peers/*/go.mod
# and go.sum, outside the product's go.mod, into a cache outside the
# repository:
#   CACHE/kubelet-v1.37.2/kubelet                  k8s.io/kubernetes/cmd/kubelet
#   CACHE/containerd-v2.4.2/containerd             github.com/containerd/containerd/v2/cmd/containerd
#   CACHE/containerd-v2.4.2/containerd-shim-runc-v2, ctr   its runc shim and client
# runc is the host's (/usr/sbin/runc, Debian's), the one pocketkube runs.
# What is already in the cache is not built again. Cold, on 2 cores: ~15
# min for kubelet, ~5 for containerd. Usage: build.sh [CACHE]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:-/var/cache/pocketkube/peers}"

version() { (cd "$here/$1" && go list -m -f '{{.Version}}' "$2"); }

kv="$(version kubelet k8s.io/kubernetes)"
out="$cache/kubelet-$kv"
if [ ! -x "$out/kubelet" ]; then
  echo "Building kubelet $kv (long, once)"
  major="${kv#v}"; major="${major%%.*}"
  minor="${kv#v*.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$kv -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$out"
  (cd "$here/kubelet" && go build -ldflags "$ldflags" -o "$out/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet)
  mv "$out/kubelet.tmp" "$out/kubelet"
fi

cv="$(version containerd github.com/containerd/containerd/v2)"
out="$cache/containerd-$cv"
for cmd in containerd containerd-shim-runc-v2 ctr; do
  if [ ! -x "$out/$cmd" ]; then
    echo "Building $cmd $cv (once)"
    mkdir -p "$out"
    # Static, as containerd's releases build the shim; no btrfs (cgo).
    (cd "$here/containerd" && CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$cv" \
      -o "$out/$cmd.tmp" "github.com/containerd/containerd/v2/cmd/$cmd")
    mv "$out/$cmd.tmp" "$out/$cmd"
  fi
done
