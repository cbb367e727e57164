#!/bin/bash
# debian.sh CACHE_DIR: what the conformance images take from Debian's
# packages (see docs/CONFORMANCE.md), made once into CACHE_DIR:
#  - the host tools the agnhost image copies with their libraries (nc,
#    dig, nslookup, host, socat), installed with apt-get when missing;
#  - CACHE_DIR/busybox: busybox built from Debian's own source package
#    with its static configuration, changed to behave as upstream's
#    busybox (the e2e-test-images/busybox base and Alpine's /bin/sh):
#    FEATURE_SH_STANDALONE and FEATURE_PREFER_APPLETS off, so that sh runs
#    what PATH finds (the agnhost image's nc is netcat-openbsd, not the
#    applet), and FEATURE_DI_ENV_HACK on, Debian's switch for upstream's
#    ash behaviour of keeping environment variables whose names are not
#    identifiers (data-1=…; Debian's build reverts busybox commit
#    9c143ce52, which upstream made in 1.28);
#  - CACHE_DIR/nginx-root: Debian's nginx and nginx-common unpacked
#    (not installed: the host gets no nginx service).
set -euo pipefail
cache=${1:?usage: debian.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

missing=()
for t in nc.openbsd:netcat-openbsd dig:bind9-dnsutils socat:socat getent:libc-bin curl:curl ss:iproute2; do
	command -v "${t%%:*}" >/dev/null || missing+=("${t##*:}")
done
if ((${#missing[@]})); then
	echo "debian.sh: installing ${missing[*]}" >&2
	apt-get update >&2
	apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

# Source packages: the host's Debian sources with deb-src added, in a
# private apt state (the host's apt configuration is left as it is).
apt_dir=$cache/apt
apt_src=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt_dir/sources.list.d"
	-o Dir::State::Lists="$apt_dir/lists")
apt_update_src() {
	[[ -e $apt_dir/updated ]] && return
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/sources.list.d"
	sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$apt_dir/sources.list.d/debian-src.sources"
	apt-get "${apt_src[@]}" update >&2
	touch "$apt_dir/updated"
}

if [[ ! -x $cache/busybox ]]; then
	apt_update_src
	src=$cache/busybox-src
	rm -rf "$src" && mkdir -p "$src"
	(cd "$src" && apt-get "${apt_src[@]}" source --download-only busybox >&2)
	tar -C "$src" -xjf "$src"/busybox_*.orig.tar.bz2
	tree=$(echo "$src"/busybox-[0-9]*/)
	tar -C "$tree" -xJf "$src"/busybox_*.debian.tar.xz
	for p in $(grep -v '^#' "$tree/debian/patches/series"); do
		patch -d "$tree" -p1 -s <"$tree/debian/patches/$p"
	done
	sed -e 's/^CONFIG_FEATURE_SH_STANDALONE=y/# CONFIG_FEATURE_SH_STANDALONE is not set/' \
		-e 's/^CONFIG_FEATURE_PREFER_APPLETS=y/# CONFIG_FEATURE_PREFER_APPLETS is not set/' \
		-e 's/^# CONFIG_FEATURE_DI_ENV_HACK is not set/CONFIG_FEATURE_DI_ENV_HACK=y/' \
		"$tree/debian/config/pkg/static" >"$tree/.config"
	{ yes "" || true; } | make -C "$tree" oldconfig >/dev/null
	nice -n 19 make -C "$tree" -j"$(nproc)" busybox >&2
	cp "$tree/busybox" "$cache/busybox.new" && mv "$cache/busybox.new" "$cache/busybox"
	rm -rf "$src"
fi

if [[ ! -x $cache/nginx-root/usr/sbin/nginx ]]; then
	rm -rf "$cache/nginx-root" "$cache/nginx-debs" && mkdir -p "$cache/nginx-debs"
	(cd "$cache/nginx-debs" && { apt-get download nginx nginx-common || { apt-get update && apt-get download nginx nginx-common; }; } >&2)
	for d in "$cache"/nginx-debs/*.deb; do dpkg -x "$d" "$cache/nginx-root.new"; done
	mv "$cache/nginx-root.new" "$cache/nginx-root"
	rm -rf "$cache/nginx-debs"
fi
