package network

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
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
	if out, err := exec.Command("nsenter", "--net="+ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1").CombinedOutput(); err != nil {
		t.Skipf("cannot add a veth pair: %v %s", err, out)
	}
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
		ifs, err := Interfaces(ns)
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
	if _, err := Interfaces(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Interfaces of a missing namespace: no error")
	}
}

func inode(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ""
}
