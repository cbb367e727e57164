package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecurity runs containers with security settings and checks what the
// process sees (its log holds the output).
func TestSecurity(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "sec")
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "f"), []byte("vol"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A Localhost profile that allows everything but mkdir.
	profile := filepath.Join(t.TempDir(), "no-mkdir.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The filter mode, then a syscall containerd's default profile denies
	// without CAP_SYS_ADMIN (unshare of a user namespace, which needs no
	// capability), then one the Localhost profile denies.
	const seccompCmd = "grep ^Seccomp: /proc/self/status; " +
		"unshare -U true 2>/dev/null && echo unshare allowed || echo unshare denied; " +
		"mkdir /tmp/d 2>/dev/null && echo mkdir allowed || echo mkdir denied"
	tests := []struct {
		name string
		mut  func(*ContainerConfig)
		cmd  string
		want string // log text (stdout F lines joined by "|")
		code int32
	}{
		{name: "default caps", cmd: "grep CapEff /proc/self/status", want: "CapEff:\t00000000a80425fb"},
		{name: "drop all add one", mut: func(c *ContainerConfig) { c.CapDrop, c.CapAdd = []string{"ALL"}, []string{"NET_BIND_SERVICE"} },
			cmd: "grep CapEff /proc/self/status", want: "CapEff:\t0000000000000400"},
		{name: "privileged", mut: func(c *ContainerConfig) { c.Privileged = true },
			cmd:  "grep CapEff /proc/self/status; grep ' /sys sysfs' /proc/mounts | cut -d' ' -f4 | cut -d, -f1",
			want: "CapEff:\t" + hostCapBnd(t) + "|rw"},
		{name: "user", mut: func(c *ContainerConfig) {
			u, err := ResolveUser(e.rootfs, "app")
			if err != nil {
				t.Fatal(err)
			}
			c.User = u
		}, cmd: "id -u; id -g; id -G", want: "1000|1000|1000 10 29"},
		{name: "read-only rootfs", mut: func(c *ContainerConfig) { c.ReadOnlyRootfs = true }, cmd: "touch /x", code: 1},
		{name: "mounts", mut: func(c *ContainerConfig) {
			c.Mounts = []Mount{{Source: vol, Destination: "/vol", ReadOnly: true}, {Source: vol, Destination: "/rw"}}
		}, cmd: "cat /vol/f; echo; touch /vol/y 2>/dev/null || echo ro; touch /rw/z && echo rw", want: "vol|ro|rw"},
		{name: "seccomp unconfined", cmd: seccompCmd, want: "Seccomp:\t0|unshare allowed|mkdir allowed"},
		{name: "seccomp runtime default", mut: func(c *ContainerConfig) { c.Seccomp = Seccomp{Type: SeccompRuntimeDefault} },
			cmd: seccompCmd, want: "Seccomp:\t2|unshare denied|mkdir allowed"},
		{name: "seccomp runtime default with SYS_ADMIN", mut: func(c *ContainerConfig) {
			c.Seccomp, c.CapAdd = Seccomp{Type: SeccompRuntimeDefault}, []string{"SYS_ADMIN"}
		}, cmd: seccompCmd, want: "Seccomp:\t2|unshare allowed|mkdir allowed"},
		{name: "seccomp runtime default privileged", mut: func(c *ContainerConfig) {
			c.Seccomp, c.Privileged = Seccomp{Type: SeccompRuntimeDefault}, true
		}, cmd: seccompCmd, want: "Seccomp:\t0|unshare allowed|mkdir allowed"},
		{name: "seccomp localhost", mut: func(c *ContainerConfig) { c.Seccomp = Seccomp{Type: SeccompLocalhost, Path: profile} },
			cmd: seccompCmd, want: "Seccomp:\t2|unshare allowed|mkdir denied"},
		{name: "env and workdir", mut: func(c *ContainerConfig) {
			c.Env = append(c.Env, "A=1", "A=2")
			c.WorkingDir = "/tmp"
		}, cmd: "echo $A; pwd", want: "2|/tmp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.container(pod, strings.ReplaceAll(tt.name, " ", "-"), "sh", "-c", tt.cmd)
			if tt.mut != nil {
				tt.mut(&cfg)
			}
			id := e.run(t, cfg)
			st := e.waitState(t, id, StateExited)
			b, _ := os.ReadFile(cfg.LogPath)
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if _, text, ok := strings.Cut(l, " stdout F "); ok {
					lines = append(lines, text)
				}
			}
			if st.ExitCode != tt.code || strings.Join(lines, "|") != tt.want {
				t.Errorf("exit %d, output %q; want %d, %q (log %q)", st.ExitCode, strings.Join(lines, "|"), tt.code, tt.want, b)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(vol, "z")); err != nil {
		t.Errorf("write through the rw mount: %v", err)
	}
}

// TestSysctls runs a container in a pod with sysctls: runc sets them in
// the pod's IPC namespace, so the container reads them, and another pod
// (and the host) keeps the kernel's value.
func TestSysctls(t *testing.T) {
	e := newTestEnv(t)
	withSysctls := e.pod(t, "sysctls", func(p *PodConfig) {
		p.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1"}
	})
	plain := e.pod(t, "plain")
	for _, tt := range []struct {
		pod  PodConfig
		want string
	}{{withSysctls, "1"}, {plain, "0"}} {
		cfg := e.container(tt.pod, "c", "cat", "/proc/sys/kernel/shm_rmid_forced")
		id := e.run(t, cfg)
		if st := e.waitState(t, id, StateExited); st.ExitCode != 0 {
			t.Fatalf("pod %s: exit code %d", tt.pod.Name, st.ExitCode)
		}
		b, _ := os.ReadFile(cfg.LogPath)
		if !strings.Contains(string(b), " stdout F "+tt.want+"\n") {
			t.Errorf("pod %s: kernel.shm_rmid_forced log %q, want %s", tt.pod.Name, b, tt.want)
		}
	}
}

func hostCapBnd(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no CapBnd")
	return ""
}
