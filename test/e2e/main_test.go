//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shared is the cluster most tests use; tests must leave it as they found it
// (their own names, cleaned up).
var shared *Cluster

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "pk-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	Binary = os.Getenv("POCKETKUBE_BIN")
	if Binary == "" {
		Binary = filepath.Join(tmp, "pocketkube")
		// The Makefile holds the -ldflags that set the versions.
		build := exec.Command("make", "-C", "../..", "build", "BIN="+Binary)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build pocketkube:", err)
			return 1
		}
	}
	host, removeLink, err := addListenAddress()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer removeLink()
	ListenHost = host
	start := time.Now()
	shared, err = StartCluster(filepath.Join(tmp, "shared"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "start shared cluster:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "shared cluster up in %s at %s\n", time.Since(start).Round(time.Millisecond), shared.Server)
	code := m.Run()
	if _, err := shared.Stop(15 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "stop shared cluster:", err)
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- shared cluster output ---\n%s\n", tail(shared.Output(), 200))
	}
	return code
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}

// listenLink and listenAddress are the interface and address the clusters
// serve on: an address of this machine that pods can route to, unlike
// 127.0.0.1, made by the tests so that they need not bind 0.0.0.0. The
// link is one end of a veth pair: not every kernel has the dummy driver.
const (
	listenLink    = "pk-e2e"
	listenAddress = "192.168.222.1"
)

// addListenAddress creates listenLink with listenAddress, replacing one
// left by an earlier run, and returns the address and how to remove it.
func addListenAddress() (string, func(), error) {
	remove := func() { exec.Command("ip", "link", "del", listenLink).Run() }
	remove()
	for _, args := range [][]string{
		{"link", "add", listenLink, "type", "veth", "peer", "name", listenLink + "-peer"},
		{"addr", "add", listenAddress + "/32", "dev", listenLink},
		{"link", "set", listenLink + "-peer", "up"},
		{"link", "set", listenLink, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			remove()
			return "", nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return listenAddress, remove, nil
}
