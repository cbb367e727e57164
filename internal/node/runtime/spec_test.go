package runtime

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSpecGolden pins ContainerConfig → config.json, one row per concern.
// Host paths are placeholders ($STATE, $ROOTFS, ...). Regenerate with
// go test ./internal/node/runtime -run TestSpecGolden -update.
func TestSpecGolden(t *testing.T) {
	podNet := PodConfig{UID: "$POD_UID", Namespace: "default", Name: "web", Hostname: "web", NetNS: "$NETNS", QOSClass: "Burstable"}
	base := func(mut func(*ContainerConfig)) ContainerConfig {
		c := ContainerConfig{
			PodUID: "$POD_UID", Name: "app", Image: "busybox", Rootfs: "$IMAGE_ROOTFS",
			Args: []string{"sh", "-c", "echo hi"}, Env: []string{"PATH=/usr/bin:/bin", "HOME=/root", "PATH=/bin"},
			LogPath: "$LOGS/0.log",
		}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	tests := []struct {
		name string
		pod  PodConfig
		cfg  ContainerConfig
	}{
		{name: "plain", pod: podNet, cfg: base(nil)},
		{name: "tty", pod: podNet, cfg: base(func(c *ContainerConfig) { c.TTY, c.Stdin = true, true })},
		{name: "user", pod: podNet, cfg: base(func(c *ContainerConfig) {
			c.User = User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{10, 29}}
			c.WorkingDir = "/home/app"
			c.NoNewPrivileges = true
		})},
		{name: "caps-add-drop", pod: podNet, cfg: base(func(c *ContainerConfig) {
			c.CapAdd, c.CapDrop = []string{"NET_ADMIN", "sys_time"}, []string{"CHOWN", "MKNOD"}
		})},
		{name: "caps-drop-all-add-one", pod: podNet, cfg: base(func(c *ContainerConfig) {
			c.CapAdd, c.CapDrop = []string{"NET_BIND_SERVICE"}, []string{"ALL"}
		})},
		{name: "caps-add-all-drop-one", pod: podNet, cfg: base(func(c *ContainerConfig) {
			c.CapAdd, c.CapDrop = []string{"ALL"}, []string{"SYS_ADMIN"}
		})},
		{name: "privileged", pod: podNet, cfg: base(func(c *ContainerConfig) { c.Privileged = true })},
		{name: "readonly-rootfs", pod: podNet, cfg: base(func(c *ContainerConfig) { c.ReadOnlyRootfs = true })},
		{name: "resources", pod: podNet, cfg: base(func(c *ContainerConfig) {
			c.Resources = Resources{CPUShares: 256, CPUQuota: 125000, CPUPeriod: 100000, MemoryLimit: 128 << 20, PidsLimit: 100}
		})},
		{name: "host-network-ipc-pid", pod: PodConfig{UID: "$POD_UID", Name: "host", Namespace: "kube-system", HostIPC: true, HostPID: true, QOSClass: "Guaranteed"}, cfg: base(nil)},
		{name: "sysctls", pod: func() PodConfig {
			p := podNet
			p.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "80"}
			return p
		}(), cfg: base(nil)},
		{name: "mounts", pod: podNet, cfg: base(func(c *ContainerConfig) {
			c.TerminationMessagePath = "/tmp/term"
			c.Mounts = []Mount{
				{Source: "$VOLUMES/data", Destination: "/data"},
				{Source: "$VOLUMES/config", Destination: "/etc/config", ReadOnly: true},
				{Source: "$HOST/mnt", Destination: "/mnt/slave", Propagation: "rslave"},
				{Source: "$HOST/shared", Destination: "/mnt/shared", Propagation: "rshared"},
				{Source: "$POD/etc-hosts", Destination: "/etc/hosts"},
			}
		})},
	}
	r := &Runtime{cgroups: &cgroupFS{mounts: map[string]string{"memory": "/sys/fs/cgroup/memory"}}, hostDevices: func() ([]specs.LinuxDevice, error) {
		mode := fs.FileMode(0o660)
		var root uint32
		return []specs.LinuxDevice{{Path: "/dev/kmsg", Type: "c", Major: 1, Minor: 11, FileMode: &mode, UID: &root, GID: &root}}, nil
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &podState{Config: tt.pod, CgroupPath: podCgroup(defaultCgroupTop, tt.pod.QOSClass, tt.pod.UID), Shm: "$POD/shm"}
			if !tt.pod.HostIPC {
				st.IPCNS = "$POD/ns/ipc"
			}
			if tt.pod.NetNS != "" {
				st.UTSNS = "$POD/ns/uts"
			} else {
				st.Shm = "/dev/shm"
			}
			spec, err := r.buildSpec(st, tt.cfg, "$ID", "$STATE/containers/$ID/rootfs", "$STATE/containers/$ID/termination-log")
			if err != nil {
				t.Fatal(err)
			}
			// Each CPU's thermal_throttle directory is masked when the
			// host has one: not part of the golden files.
			spec.Linux.MaskedPaths = slices.DeleteFunc(spec.Linux.MaskedPaths, func(p string) bool {
				return strings.HasSuffix(p, "/thermal_throttle")
			})
			got, err := json.MarshalIndent(spec, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "spec-"+tt.name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("config.json differs from %s (run with -update and review the diff):\n%s", golden, got)
			}
		})
	}
}

func TestSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		opt  SpecOpts
	}{
		{name: "no args", opt: WithProcessArgs()},
		{name: "relative mount", opt: WithMounts([]Mount{{Source: "/a", Destination: "rel"}})},
		{name: "bad propagation", opt: WithMounts([]Mount{{Source: "/a", Destination: "/b", Propagation: "shared"}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ApplyOpts(DefaultSpec("/r", "/dev/shm"), tt.opt); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestRestrictOOMScoreAdj(t *testing.T) {
	for _, tc := range []struct {
		min      int
		adj, out *int
	}{
		{min: -1000, adj: new(-997), out: new(-997)},
		{min: 0, adj: new(-997), out: new(0)},
		{min: 0, adj: new(1000), out: new(1000)},
		{min: 0, adj: nil, out: nil},
	} {
		r := &Runtime{minOOMScoreAdj: tc.min}
		got := r.restrictOOMScoreAdj(tc.adj)
		if (got == nil) != (tc.out == nil) || got != nil && *got != *tc.out {
			t.Errorf("min %d, adj %v: got %v, want %v", tc.min, tc.adj, got, tc.out)
		}
	}
}
