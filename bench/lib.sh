# Shared by the bench scripts: source it (`. bench/lib.sh`); functions used
# inside `flock ... bash -c` are exported by export_lib.

# busybox_rootfs ROOT: a root filesystem of the host's busybox-static, all
# applets linked, with a passwd for root.
busybox_rootfs() {
	local root=$1
	mkdir -p "$root/bin" "$root/etc" "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
}

# wait_node_ready KUBECTL...: until the node is Ready and the default
# service account exists (pods need it to be admitted).
wait_node_ready() {
	until [ "$("$@" get nodes 2>/dev/null | grep -c ' Ready ')" = 1 ] && "$@" get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
}

export_lib() { export -f busybox_rootfs wait_node_ready; }
