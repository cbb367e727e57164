package runtime

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCrunRefuses(t *testing.T) {
	plain := func() *specs.Spec { return DefaultSpec("/rootfs", "/shm") }
	for _, tc := range []struct {
		name    string
		spec    func() *specs.Spec
		hidden  bool // crun runs without the cgroup2 mount
		refused bool
	}{
		{name: "plain", spec: plain},
		{name: "plain, hidden cgroup2", spec: plain, hidden: true},
		{name: "Bidirectional mount", hidden: true, refused: true, spec: func() *specs.Spec {
			s := plain()
			if err := ApplyOpts(s, WithMounts([]Mount{{Source: "/mnt", Destination: "/mnt", Propagation: "rshared"}})); err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{name: "Bidirectional mount, crun in the host's namespace", spec: func() *specs.Spec {
			s := plain()
			if err := ApplyOpts(s, WithMounts([]Mount{{Source: "/mnt", Destination: "/mnt", Propagation: "rshared"}})); err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{name: "HostToContainer mount", hidden: true, spec: func() *specs.Spec {
			s := plain()
			if err := ApplyOpts(s, WithMounts([]Mount{{Source: "/mnt", Destination: "/mnt", Propagation: "rslave"}})); err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{name: "idmapped mount", refused: true, spec: func() *specs.Spec {
			s := plain()
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/m", Type: "bind", Source: "/m", Options: []string{"rbind", "idmap"}})
			return s
		}},
		{name: "memory policy", refused: true, spec: func() *specs.Spec {
			s := plain()
			s.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: "MPOL_BIND"}
			return s
		}},
		{name: "net devices", refused: true, spec: func() *specs.Spec {
			s := plain()
			s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth1": {}}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			why := crunRefuses(tc.spec(), tc.hidden)
			if (why != "") != tc.refused {
				t.Errorf("crunRefuses = %q, want refused %v", why, tc.refused)
			}
		})
	}
}

func TestRuncWords(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"executable file `nope` not found in $PATH: No such file or directory", `exec: "nope": executable file not found in $PATH`},
		{`runc create failed: unable to start container process: error during container init: exec: "nope": executable file not found in $PATH`,
			`runc create failed: unable to start container process: error during container init: exec: "nope": executable file not found in $PATH`},
		{"open `/etc/x`: Permission denied", "open `/etc/x`: Permission denied"},
	} {
		if got := runcWords(tc.in); got != tc.want {
			t.Errorf("runcWords(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
