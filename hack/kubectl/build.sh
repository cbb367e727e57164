#!/usr/bin/env bash
# Builds the real kubectl of each minor version the e2e tests drive, from
# upstream's Go modules pinned (and checksummed) in hack/kubectl/v1.*/go.mod
# and go.sum, with hack/kubectl/main.go, into a cache outside the repository:
#   CACHE/v1.27.16/kubectl      the binary, built once per patch version
#   CACHE/bin/kubectl.1.27      a link to it; the tests' KUBECTL_DIR
# A binary already in the cache is not built again. Usage: build.sh [CACHE]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:-/var/cache/pocketkube/kubectl}"
mkdir -p "$cache/bin"

for mod in "$here"/v1.*/; do
  mod="${mod%/}"
  minor="${mod##*/v}" # 1.27
  # The version stamped in is the module's: kubectl v0.27.16 is Kubernetes v1.27.16.
  modver="$(cd "$mod" && go list -m -f '{{.Version}}' k8s.io/kubectl)"
  version="v1.${modver#v0.}"
  major="${minor%%.*}"
  minor_only="${minor#*.}"
  out="$cache/$version/kubectl"
  if [ ! -x "$out" ]; then
    echo "Building kubectl $version (a few minutes, once)"
    # The module's release time, so a rebuild prints the same version line.
    date="$(cd "$mod" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubectl)"
    ldflags="-s -w"
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
      ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor_only"
      ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
      # The Kubernetes commit is not in the module; say nothing rather than "$Format:%H$".
      ldflags+=" -X $pkg.gitCommit="
    done
    mkdir -p "$cache/$version"
    # Every version builds the one main.go, in a copy of its module.
    work="$(mktemp -d)"
    cp "$mod/go.mod" "$mod/go.sum" "$here/main.go" "$work/"
    (cd "$work" && CGO_ENABLED=0 go build -tags kubectl -trimpath -ldflags "$ldflags" -o "$out.tmp" .)
    rm -rf "$work"
    mv "$out.tmp" "$out"
  fi
  ln -sfn "../$version/kubectl" "$cache/bin/kubectl.$minor"
done
