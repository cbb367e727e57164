package network

import (
	"bufio"
	"bytes"
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
// pod. It reads /proc/thread-self/net/dev on an OS thread locked to a
// goroutine of its own that joins the namespace and returns to the
// agent's; should it fail to return, the thread is never unlocked and Go
// ends it with the goroutine, so no other goroutine ever runs in a pod's
// namespace.
func Interfaces(nsPath string) ([]Interface, error) {
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
