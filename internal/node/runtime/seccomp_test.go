package runtime

import (
	"encoding/json"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pocketkube/pocketkube/internal/node/runtime/seccomp"
)

// TestWithSeccomp: each profile kind lands in the spec as containerd's
// CRI plugin puts it there, a privileged container gets no filter
// whatever it asked, and a Localhost profile that is missing or not JSON
// fails with containerd's words.
func TestWithSeccomp(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "audit.json")
	if err := os.WriteFile(local, []byte(`{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.json")
	defaultFor := func(caps []string) *specs.LinuxSeccomp {
		s := DefaultSpec("/r", "/dev/shm")
		setCaps(s, caps)
		return seccomp.DefaultProfile(s)
	}
	tests := []struct {
		name       string
		sp         Seccomp
		privileged bool
		capAdd     []string
		want       *specs.LinuxSeccomp
		err        string
	}{
		{name: "unconfined", sp: Seccomp{Type: SeccompUnconfined}},
		{name: "runtime default", sp: Seccomp{Type: SeccompRuntimeDefault}, want: defaultFor(defaultCaps)},
		{name: "runtime default follows the capabilities", sp: Seccomp{Type: SeccompRuntimeDefault}, capAdd: []string{"SYS_ADMIN"},
			want: defaultFor(append(slices.Clone(defaultCaps), "CAP_SYS_ADMIN"))},
		{name: "localhost", sp: Seccomp{Type: SeccompLocalhost, Path: local}, want: &specs.LinuxSeccomp{
			DefaultAction: specs.ActLog,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: new(uint(1))}},
		}},
		{name: "privileged runtime default", sp: Seccomp{Type: SeccompRuntimeDefault}, privileged: true},
		{name: "privileged localhost missing", sp: Seccomp{Type: SeccompLocalhost, Path: missing}, privileged: true},
		{name: "localhost missing", sp: Seccomp{Type: SeccompLocalhost, Path: missing},
			err: `cannot load seccomp profile "` + missing + `": open ` + missing + `: no such file or directory`},
		{name: "localhost not json", sp: Seccomp{Type: SeccompLocalhost, Path: bad},
			err: `decoding seccomp profile failed "` + bad + `": invalid character 'o' in literal null (expecting 'u')`},
		{name: "unknown type", sp: Seccomp{Type: "Other"}, err: "seccomp unknown ProfileType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultSpec("/r", "/dev/shm")
			err := ApplyOpts(s, WithCapabilities(tt.capAdd, nil, knownCaps), WithPrivileged(tt.privileged, knownCaps, nil), WithSeccomp(tt.sp, tt.privileged))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, s.Linux.Seccomp); diff != "" {
				t.Errorf("linux.seccomp (-want +got):\n%s", diff)
			}
		})
	}
	// The default profile lets unshare through only with CAP_SYS_ADMIN,
	// which is what the e2e test relies on.
	allows := func(p *specs.LinuxSeccomp, name string) bool {
		for _, sc := range p.Syscalls {
			if sc.Action == specs.ActAllow && len(sc.Args) == 0 && slices.Contains(sc.Names, name) {
				return true
			}
		}
		return false
	}
	if allows(defaultFor(defaultCaps), "unshare") || !allows(defaultFor(append(slices.Clone(defaultCaps), "CAP_SYS_ADMIN")), "unshare") {
		t.Error("default profile: unshare allowed without CAP_SYS_ADMIN, or denied with it")
	}
}

// TestSeccompRuntimeDefaultIsContainerds runs a RuntimeDefault container
// with real runc and compares the linux.seccomp of the config.json it was
// created from with the profile containerd v2.4.2 itself generates for
// the default capabilities on this architecture
// (testdata/seccomp-containerd-v2.4.2-<arch>.json, written by
// testdata/gen-seccomp with containerd's own contrib/seccomp): the copy in
// package seccomp has not drifted from upstream. The container's own
// /proc/self/status says it runs filtered.
func TestSeccompRuntimeDefaultIsContainerds(t *testing.T) {
	golden := filepath.Join("testdata", "seccomp-containerd-v2.4.2-"+goruntime.GOARCH+".json")
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Skipf("no containerd profile for %s: %v", goruntime.GOARCH, err)
	}
	e := newTestEnv(t)
	pod := e.pod(t, "seccomp")
	cfg := e.container(pod, "default", "grep", "^Seccomp:", "/proc/self/status")
	cfg.Seccomp = Seccomp{Type: SeccompRuntimeDefault}
	id := e.run(t, cfg)
	b, err := os.ReadFile(filepath.Join(e.r.containerDir(id), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	var wantProfile specs.LinuxSeccomp
	if err := json.Unmarshal(want, &wantProfile); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&wantProfile, spec.Linux.Seccomp); diff != "" {
		t.Errorf("config.json's linux.seccomp differs from containerd's (%s) (-want +got):\n%s", golden, diff)
	}
	st := e.waitState(t, id, StateExited)
	log, _ := os.ReadFile(cfg.LogPath)
	if st.ExitCode != 0 || !strings.Contains(string(log), "Seccomp:\t2") {
		t.Errorf("exit %d, log %q; want Seccomp: 2 (filter mode)", st.ExitCode, log)
	}
}
