package network

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestParseNetDev(t *testing.T) {
	in := []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0: 1532481    1024    3    4    0     0          0         0   201992     998    5    6    0     0       0          0
`)
	got := ParseNetDev(in)
	want := []Interface{{Name: "eth0", RxBytes: 1532481, RxPackets: 1024, RxErrors: 3, RxDropped: 4,
		TxBytes: 201992, TxPackets: 998, TxErrors: 5, TxDropped: 6}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("ParseNetDev = %+v, want %+v", got, want)
	}
}

// TestInterfaces reads a namespace's interfaces from outside it and checks
// that no thread of the process is left in it.
func TestInterfaces(t *testing.T) {
	ns := vethNetNS(t, "eth0", "eth1")
	var nsIno string
	if fi, err := os.Stat(ns); err == nil {
		nsIno = inode(fi)
	}
	leftIn := func() []string {
		tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		var in []string
		for _, task := range tasks {
			if fi, err := os.Stat(task); err == nil && inode(fi) == nsIno {
				in = append(in, task)
			}
		}
		return in
	}
	before := leftIn()
	for range 20 {
		ifs, err := Interfaces(ns, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ifs) != 2 || ifs[0].Name != "eth1" && ifs[1].Name != "eth1" || ifs[0].Name != "eth0" && ifs[1].Name != "eth0" {
			t.Fatalf("Interfaces = %+v, want eth0 and eth1 (lo left out)", ifs)
		}
	}
	// The thread createNetNS made the namespace on may still be ending.
	for _, task := range leftIn() {
		if !slices.Contains(before, task) {
			t.Errorf("thread %s is still in the pod's network namespace", task)
		}
	}
	if _, err := Interfaces(filepath.Join(t.TempDir(), "missing"), 0); err == nil {
		t.Error("Interfaces of a missing namespace: no error")
	}
}

// vethNetNS makes a network namespace (removed when t ends) with a veth
// pair named a and b in it.
func vethNetNS(t *testing.T, a, b string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
	ns := filepath.Join(t.TempDir(), "ns")
	if err := createNetNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeNetNS(ns) })
	if out, err := exec.Command("nsenter", "--net="+ns, "ip", "link", "add", a, "type", "veth", "peer", "name", b).CombinedOutput(); err != nil {
		t.Skipf("cannot add a veth pair: %v %s", err, out)
	}
	return ns
}

func inode(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ""
}

// TestInterfacesOfPid reads a namespace's interfaces through a process in
// it, and through one that is not (a sleep in the host's namespace; not
// this test's process, whose main thread createNetNS may have left in a
// namespace it made), which must not be read as the namespace's.
func TestInterfacesOfPid(t *testing.T) {
	// Names the host has not, so that its interfaces cannot pass for these.
	ns := vethNetNS(t, "pkstats0", "pkstats1")
	sleeper := exec.Command("nsenter", "--net="+ns, "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	nsFi, err := os.Stat(ns)
	if err != nil {
		t.Fatal(err)
	}
	// nsenter joins the namespace, then execs sleep: poll (bounded).
	for i := 0; ; i++ {
		if fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid)); err == nil && inode(fi) == inode(nsFi) {
			break
		}
		if i == 500 {
			t.Fatal("the sleeper never joined the namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	outsider := exec.Command("sleep", "60")
	if err := outsider.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = outsider.Process.Kill(); _ = outsider.Wait() })
	if fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", outsider.Process.Pid)); err != nil || inode(fi) == inode(nsFi) {
		t.Fatalf("the outsider's namespace: %v, or the pod's", err)
	}
	names := func(ifs []Interface) []string {
		var out []string
		for _, i := range ifs {
			out = append(out, i.Name)
		}
		slices.Sort(out)
		return out
	}
	want := []string{"pkstats0", "pkstats1"}
	tests := []struct {
		name    string
		pid     int
		viaProc bool // read through /proc/<pid>, without entering the namespace
	}{
		{name: "process in the namespace", pid: sleeper.Process.Pid, viaProc: true},
		{name: "process in another namespace", pid: outsider.Process.Pid},
		{name: "no process", pid: 0},
		{name: "process gone", pid: 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ifs, err := Interfaces(ns, tt.pid)
			if err != nil || !slices.Equal(names(ifs), want) {
				t.Fatalf("Interfaces = %v, %v; want %v", names(ifs), err, want)
			}
			ifs, err = pidInterfaces(ns, tt.pid)
			if tt.viaProc && (err != nil || !slices.Equal(names(ifs), want)) {
				t.Errorf("pidInterfaces = %v, %v; want %v", names(ifs), err, want)
			}
			if !tt.viaProc && !errors.Is(err, errNotInNetNS) {
				t.Errorf("pidInterfaces = %v, %v; want errNotInNetNS", names(ifs), err)
			}
		})
	}
	if _, err := Interfaces(filepath.Join(t.TempDir(), "missing"), sleeper.Process.Pid); err == nil || errors.Is(err, errNotInNetNS) {
		t.Errorf("Interfaces of a missing namespace = %v, want its stat error", err)
	}
}
