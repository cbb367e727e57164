package network

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NetNSPathIn is where a Manager with state directory stateDir keeps the
// network namespace of podUID (Manager.NetNSPath), for readers that have
// no Manager, such as the node's stats.
func NetNSPathIn(stateDir, podUID string) string {
	return filepath.Join(stateDir, "netns", podUID)
}

// Interface is one network interface's counters, as the kernel gives them
// in /proc/net/dev (and cadvisor reads them).
type Interface struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// Interfaces reads the counters of the interfaces of the network namespace
// mounted at nsPath, loopback left out, as cadvisor's network stats of a
// pod.
//
// pid, when not 0, is a process thought to be in that namespace (one of
// the pod's containers): its /proc/<pid>/net/dev shows the namespace's
// interfaces to the host, as cadvisor reads a container's, with no thread
// entering the namespace (half the cost, and no goroutine hand-off). It is
// read only when /proc/<pid>/ns/net is the namespace at nsPath, both
// through one descriptor of /proc/<pid>: a process that ended, its pid
// taken by another meanwhile, is not read as the pod's.
//
// Otherwise (pid 0, gone, or in another namespace) it reads
// /proc/thread-self/net/dev on an OS thread locked to a goroutine of its
// own that joins the namespace and returns to the agent's; should it fail
// to return, the thread is never unlocked and Go ends it with the
// goroutine, so no other goroutine ever runs in a pod's namespace.
func Interfaces(nsPath string, pid int) ([]Interface, error) {
	if pid > 0 {
		ifs, err := pidInterfaces(nsPath, pid)
		if err == nil || !errors.Is(err, errNotInNetNS) {
			return ifs, err
		}
	}
	type result struct {
		ifs []Interface
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ifs, back, err := readInNetNS(nsPath)
		if back {
			runtime.UnlockOSThread()
		}
		ch <- result{ifs, err}
	}()
	r := <-ch
	return r.ifs, r.err
}

// errNotInNetNS is pidInterfaces' error for a pid that is gone or in
// another namespace than nsPath's.
var errNotInNetNS = errors.New("process not in the network namespace")

// pidInterfaces reads /proc/<pid>/net/dev when pid is in the namespace
// mounted at nsPath, and fails with errNotInNetNS otherwise; an error
// about nsPath itself (none: a host-network pod) is returned as is.
func pidInterfaces(nsPath string, pid int) ([]Interface, error) {
	var want, got unix.Stat_t
	if err := unix.Stat(nsPath, &want); err != nil {
		return nil, &os.PathError{Op: "stat", Path: nsPath, Err: err}
	}
	proc := "/proc/" + strconv.Itoa(pid)
	dir, err := unix.Open(proc, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %w", proc, errNotInNetNS, err)
	}
	defer unix.Close(dir)
	if err := unix.Fstatat(dir, "ns/net", &got, 0); err != nil || got.Dev != want.Dev || got.Ino != want.Ino {
		return nil, fmt.Errorf("%s/ns/net is not %s: %w", proc, nsPath, errNotInNetNS)
	}
	b, err := readAt(dir, "net/dev")
	if err != nil {
		// Ended between the two: its namespace cannot be read there.
		return nil, fmt.Errorf("read %s/net/dev: %w: %w", proc, errNotInNetNS, err)
	}
	return ParseNetDev(b), nil
}

// readAt reads file name under the directory dir with plain system calls:
// os.ReadFile would register the /proc file with the poller first, which
// the kernel refuses, at a cost on each of a summary's hundred reads.
func readAt(dir int, name string) ([]byte, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
}

// readInNetNS runs on a locked thread; back reports whether the thread is
// in the namespace it started in.
func readInNetNS(nsPath string) (ifs []Interface, back bool, err error) {
	own, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, true, fmt.Errorf("open own netns: %w", err)
	}
	defer own.Close()
	ns, err := os.Open(nsPath)
	if err != nil {
		return nil, true, fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("join netns %s: %w", nsPath, err)
	}
	b, rerr := os.ReadFile("/proc/thread-self/net/dev")
	if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, false, fmt.Errorf("leave netns %s: %w", nsPath, err)
	}
	if rerr != nil {
		return nil, true, fmt.Errorf("read interfaces of netns %s: %w", nsPath, rerr)
	}
	return ParseNetDev(b), true, nil
}

// ParseNetDev parses /proc/net/dev, loopback left out.
func ParseNetDev(b []byte) []Interface {
	var out []Interface
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "lo" || len(f) < 16 {
			continue
		}
		n := func(i int) uint64 {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			return v
		}
		out = append(out, Interface{Name: name,
			RxBytes: n(0), RxPackets: n(1), RxErrors: n(2), RxDropped: n(3),
			TxBytes: n(8), TxPackets: n(9), TxErrors: n(10), TxDropped: n(11)})
	}
	return out
}
