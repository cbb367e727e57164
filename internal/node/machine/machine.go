package machine

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Machine is what the node reports about the host it runs on.
type Machine struct {
	NumCPU        int
	MemoryBytes   int64
	StorageBytes  int64 // the filesystem that holds the node's data
	HugePageSizes []int64
	MachineID     string
	SystemUUID    string
	BootID        string
	KernelVersion string
	OSImage       string
	// BootTime is when the host booted (/proc/stat btime); zero when it
	// cannot be read.
	BootTime time.Time
}

// Read reads the host's facts as cadvisor gives them to kubelet;
// dataDir's filesystem is the node's ephemeral storage.
func Read(dataDir string) (Machine, error) {
	m := Machine{NumCPU: goruntime.NumCPU()}
	var err error
	if m.MemoryBytes, err = memTotal("/proc/meminfo"); err != nil {
		return m, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dataDir, &st); err != nil {
		return m, fmt.Errorf("statfs %s: %w", dataDir, err)
	}
	m.StorageBytes = int64(st.Blocks) * st.Bsize
	if entries, err := os.ReadDir("/sys/kernel/mm/hugepages"); err == nil {
		for _, e := range entries {
			// hugepages-2048kB
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(e.Name(), "hugepages-"), "kB"), 10, 64)
			if err == nil {
				m.HugePageSizes = append(m.HugePageSizes, kb<<10)
			}
		}
	}
	m.MachineID = readTrimmed("/etc/machine-id")
	m.SystemUUID = readTrimmed("/sys/class/dmi/id/product_uuid")
	m.BootID = readTrimmed("/proc/sys/kernel/random/boot_id")
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		m.KernelVersion = unix.ByteSliceToString(uts.Release[:])
	}
	m.OSImage = osImage("/etc/os-release")
	m.BootTime = bootTime("/proc/stat")
	return m, nil
}

// bootTime returns the btime line of /proc/stat, or the zero time.
func bootTime(path string) time.Time {
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}

func memTotal(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s: %w", path, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in %s", path)
}

func readTrimmed(path string) string {
	data, _ := os.ReadFile(path)
	return strings.TrimSpace(string(data))
}

// osImage returns PRETTY_NAME from os-release, as cadvisor does.
func osImage(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "Linux"
	}
	s := bufio.NewScanner(bytes.NewReader(data))
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return v
		}
	}
	return "Linux"
}
