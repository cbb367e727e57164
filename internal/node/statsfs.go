package node

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pocketkube/pocketkube/internal/node/network"
)

// PodInterfaces reads the interfaces of the pod's network namespace, for
// /metrics/cadvisor's network series.
func (c cgroupStats) PodInterfaces(podUID string) ([]network.Interface, error) {
	return network.Interfaces(network.NetNSPathIn(c.netStateDir, podUID), 0)
}

// FsDevice names the device of nodefs as cadvisor's device label: the
// source of the mount the node's directory is on ("" if not found).
func (c cgroupStats) FsDevice() string {
	return mountSource(c.nodeFsDir)
}

// mountSource is the source of the mount whose device holds dir, from
// /proc/self/mountinfo.
func mountSource(dir string) string {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return ""
	}
	want := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, after := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 3 || len(after) < 2 || fields[2] != want {
			continue
		}
		return after[1]
	}
	return ""
}
