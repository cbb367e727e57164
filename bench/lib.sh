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

# start_cluster: `pocketkube up` ($WORK/pocketkube, copied by the caller) on
# $WORK/data and a free loopback port, in the background, -v $LOGV if set;
# stopped by Ctrl-C when the calling shell exits. Sets PK_PID, KC (the admin
# kubeconfig) and K (kubectl 1.33 with it) and returns once the node is
# Ready. Use it inside the `flock /tmp/cluster.lock` part.
start_cluster() {
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	"$WORK/pocketkube" up --data-dir "$WORK/data" --listen "127.0.0.1:$port" ${LOGV:+-v "$LOGV"} >"$WORK/pk.log" 2>&1 &
	PK_PID=$!
	trap 'stop_cluster $?' EXIT
	until [ -f "$WORK/data/kubeconfig" ]; do sleep 0.1; done
	KC=$WORK/data/kubeconfig
	K="/usr/lib/google-cloud-sdk/bin/kubectl.1.33 --kubeconfig $KC"
	wait_node_ready $K
}

# stop_cluster RC: stops start_cluster's cluster, keeps its log in $KEEP_LOG
# if set, shows its end when RC says the run failed, and warns about
# container shims or kube-proxy rules left behind.
stop_cluster() {
	kill -INT "$PK_PID" 2>/dev/null
	wait "$PK_PID" 2>/dev/null
	[ -z "${KEEP_LOG:-}" ] || cp "$WORK/pk.log" "$KEEP_LOG"
	[ "$1" = 0 ] || { echo "failed; the end of the cluster log:" >&2; tail -40 "$WORK/pk.log" >&2; }
	local left
	left=$(pgrep -fc "shim.*--bundle $WORK/" || true)
	[ "$left" = 0 ] || echo "WARNING: $left container shims left after the cluster stopped" >&2
	if nft list table ip kube-proxy >/dev/null 2>&1; then echo "WARNING: kube-proxy nftables table left after the cluster stopped" >&2; fi
}

export_lib() { export -f busybox_rootfs wait_node_ready start_cluster stop_cluster; }
