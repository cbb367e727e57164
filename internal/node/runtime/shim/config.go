package shim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// ConfigFile is the name of the shim's input in the bundle directory.
const ConfigFile = "shim.json"

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
