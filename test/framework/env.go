package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Env is what a TestMain prepares for the clusters of its tests or
// benchmarks.
type Env struct {
	// Binary is the pocketkube binary under test.
	Binary string
	// Host is an address of this machine pods can reach, where the
	// clusters listen (ListenAddress).
	Host string
	// Dir is a temporary directory that Close removes.
	Dir string

	removeLink func()
}

// NewEnv makes a temporary directory (named with prefix), finds or
// builds the binary there (from the repository at repo, see binary) and
// creates the listen address. Close undoes it.
func NewEnv(repo, prefix string) (*Env, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	bin, err := binary(repo, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	host, removeLink, err := ListenAddress()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Env{Binary: bin, Host: host, Dir: dir, removeLink: removeLink}, nil
}

// Close removes the listen address and the temporary directory.
func (e *Env) Close() {
	e.removeLink()
	os.RemoveAll(e.Dir)
}

// binary is the pocketkube binary to test: $POCKETKUBE_BIN, or else one
// built into dir by `make -C repo build`, which holds the -ldflags that
// set the versions; make's output goes to stderr.
func binary(repo, dir string) (string, error) {
	if bin := os.Getenv("POCKETKUBE_BIN"); bin != "" {
		return bin, nil
	}
	bin := filepath.Join(dir, "pocketkube")
	build := exec.Command("make", "-C", repo, "build", "BIN="+bin)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build pocketkube: %w", err)
	}
	return bin, nil
}
