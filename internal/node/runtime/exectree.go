package runtime

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// execWaitDelay bounds how long Exec waits, once the command has exited
// or been killed, for processes it left behind (a daemon it started) to
// close their copies of the output pipes, which would otherwise hold Exec
// until they exit.
const execWaitDelay = 2 * time.Second

// execPidFile returns a path for `runc exec --pid-file` of container id,
// in the state directory, which only root may write.
func (r *Runtime) execPidFile(id string) (string, error) {
	dir := filepath.Join(r.cfg.StateDir, "exec")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create exec state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, id+"-*.pid")
	if err != nil {
		return "", fmt.Errorf("create exec pid file: %w", err)
	}
	f.Close()
	return f.Name(), nil
}

// killExec kills the process `runc exec` started (its pid in pidFile,
// once runc has written it) and every process it started in turn, as
// the CRI's ExecSync does when its timeout passes: killing runc alone
// would leave them running in the container. Only processes in the
// container's pid namespace (pidNS, the target of /proc/<init>/ns/pid)
// are signalled, so a pid reused by a process of the host is left alone.
func killExec(pidFile, pidNS string) {
	b, err := os.ReadFile(pidFile)
	if err != nil || pidNS == "" {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	// Stop the tree first, so that none of it forks a process the kill
	// would miss, then kill what was stopped.
	stopped := map[int]bool{}
	for range 10 {
		grew := false
		for _, p := range processTree(pid) {
			if stopped[p] || !inPidNS(p, pidNS) {
				continue
			}
			_ = unix.Kill(p, unix.SIGSTOP)
			stopped[p], grew = true, true
		}
		if !grew {
			break
		}
	}
	for p := range stopped {
		_ = unix.Kill(p, unix.SIGKILL)
	}
}

func inPidNS(pid int, ns string) bool {
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	return err == nil && link == ns
}

// processTree returns root and its descendants that exist now, from
// the parent pids in /proc/<pid>/stat.
func processTree(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	exists := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
		if pid == root {
			exists = true
		}
	}
	if !exists {
		return nil
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}
