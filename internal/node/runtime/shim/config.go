package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ConfigFile is the name of the shim's input in the bundle directory.
const ConfigFile = "shim.json"

// LogFile is the name of the shim's own log (its stdout and stderr) in the
// bundle directory.
const LogFile = "shim.log"

// AttachSocket is the name of the attach socket in the bundle directory.
const AttachSocket = "attach.sock"

// Config is the shim's input, written by the runtime to <bundle>/shim.json.
// Its JSON form (field names without tags) is shared with running shims of
// earlier versions: keep it compatible.
type Config struct {
	ID, Bundle     string
	Runc, RuncRoot string
	LogPath        string // CRI log file; "" = discard output
	ExitFile       string
	TTY, Stdin     bool
	StdinOnce      bool
	OOMFile        string // memory.oom_control (v1) or memory.events (v2) of the container cgroup
	// HideMount is a mount point the OCI runtime's create must not see
	// ("" = none): it then runs in a mount namespace of its own, a slave
	// of the shim's, with that mount detached (crun on a hybrid cgroup
	// layout, see runtime.hideCgroup2).
	HideMount string `json:",omitempty"`
}

// ExitStatus is the exit record the shim writes to Config.ExitFile
// (StateDir/exits/<id>) when the container's init exits. It is written to a
// temporary name starting with "." and renamed, so watchers see whole files.
type ExitStatus struct {
	ExitCode   int32     `json:"exitCode"`
	FinishedAt time.Time `json:"finishedAt"`
	OOMKilled  bool      `json:"oomKilled"`
	// Reason is set by the runtime, not the shim, when it records the
	// exit of a container whose shim died ("Unknown").
	Reason string `json:"reason,omitempty"`
}

// readyReport is what Run writes on fd 3 once `runc create` succeeded:
// "ok", then when runc create started and when it ended, in Unix
// nanoseconds, for the runtime's trace of a container's creation
// (runtime.Steps).
func readyReport(runcStart, runcEnd time.Time) string {
	return fmt.Sprintf("ok %d %d\n", runcStart.UnixNano(), runcEnd.UnixNano())
}

// ParseReady reads a report of Run on fd 3: ok is whether it says that
// `runc create` succeeded (anything else is runc's error text), with the
// times runc create started and ended when the shim gave them (zero
// otherwise).
func ParseReady(report string) (runcStart, runcEnd time.Time, ok bool) {
	f := strings.Fields(report)
	if len(f) == 0 || f[0] != "ok" || (len(f) != 1 && len(f) != 3) {
		return time.Time{}, time.Time{}, false
	}
	if len(f) == 3 {
		s, err1 := strconv.ParseInt(f[1], 10, 64)
		e, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 == nil && err2 == nil {
			runcStart, runcEnd = time.Unix(0, s), time.Unix(0, e)
		}
	}
	return runcStart, runcEnd, true
}

// writeJSONAtomic is internal/atomicfile.WriteUnsynced, repeated here
// because the shim imports only the standard library and golang.org/x/sys
// (see the package doc and TestDeps): its temporary name starts with "." so
// that the runtime's exit watcher skips it.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
