#!/usr/bin/env bash
# Measures the cold build (an empty, throw-away GOCACHE: the real cache is
# never cleared) and the warm rebuild of bin/pocketkube, modules already
# downloaded. Usage: bench/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cold_cache=$(mktemp -d /tmp/pk-gocache.XXXXXX)
trap 'rm -rf "$cold_cache"' EXIT
go mod download
out=$(mktemp -d)
t0=$(date +%s.%N)
GOCACHE=$cold_cache make -s build BIN="$out/pocketkube" >/dev/null
t1=$(date +%s.%N)
make -s build BIN="$out/pocketkube" >/dev/null   # fill the real cache if needed
t2=$(date +%s.%N)
touch cmd/pocketkube/main.go
make -s build BIN="$out/pocketkube" >/dev/null
t3=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "cold build (empty GOCACHE): %.0f s\n", b - a }'
awk -v a="$t2" -v b="$t3" 'BEGIN { printf "warm rebuild (cached packages, relink): %.1f s\n", b - a }'
rm -rf "$out"
