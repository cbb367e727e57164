package runtime

import (
	"bytes"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	e := newTestEnv(t)
	v, err := e.r.Version(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v == "" || strings.Contains(v, " ") {
		t.Errorf("Version() = %q", v)
	}
}

func TestContainerRun(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "run")
	cri := regexp.MustCompile(`^\S+ stdout F hello\n$`)
	t.Run("echo hello reaches the CRI log", func(t *testing.T) {
		cfg := e.container(pod, "echo", "echo", "hello")
		id := e.run(t, cfg)
		st := e.waitState(t, id, StateExited)
		if st.ExitCode != 0 || st.Reason != "Completed" {
			t.Errorf("exit = %d %q, want 0 Completed", st.ExitCode, st.Reason)
		}
		b, err := os.ReadFile(cfg.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if !cri.Match(b) {
			t.Errorf("log = %q, want %s", b, cri)
		}
		ts, _, _ := strings.Cut(string(b), " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("log timestamp: %v", err)
		}
	})
	tests := []struct {
		name     string
		args     []string
		code     int32
		reason   string
		message  string
		lastLine string
	}{
		{name: "exit 0", args: []string{"true"}, code: 0, reason: "Completed"},
		{name: "exit 3", args: []string{"sh", "-c", "echo oops >&2; exit 3"}, code: 3, reason: "Error", lastLine: "stderr F oops"},
		{name: "termination message", args: []string{"sh", "-c", "echo -n bye > /dev/termination-log"}, code: 0, reason: "Completed", message: "bye"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.container(pod, strings.ReplaceAll(tt.name, " ", "-"), tt.args...)
			id := e.run(t, cfg)
			st := e.waitState(t, id, StateExited)
			if st.ExitCode != tt.code || st.Reason != tt.reason || st.Message != tt.message {
				t.Errorf("status = %d %q %q, want %d %q %q", st.ExitCode, st.Reason, st.Message, tt.code, tt.reason, tt.message)
			}
			if st.StartedAt.IsZero() || st.FinishedAt.IsZero() || st.CreatedAt.IsZero() {
				t.Errorf("timestamps not set: %+v", st)
			}
			if tt.lastLine != "" {
				b, _ := os.ReadFile(cfg.LogPath)
				if !strings.Contains(string(b), tt.lastLine) {
					t.Errorf("log %q does not contain %q", b, tt.lastLine)
				}
			}
			if err := e.r.RemoveContainer(e.ctx, id); err != nil {
				t.Fatal(err)
			}
			if _, err := e.r.ContainerStatus(e.ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("status after remove: %v, want ErrNotFound", err)
			}
			if _, err := os.Stat(cfg.LogPath); err != nil {
				t.Errorf("log removed with the container: %v", err)
			}
		})
	}
	t.Run("missing executable", func(t *testing.T) {
		_, err := e.r.CreateContainer(e.ctx, e.container(pod, "nope", "nope"))
		if err == nil || !strings.Contains(err.Error(), `exec: "nope": executable file not found in $PATH`) {
			t.Errorf("CreateContainer error = %v", err)
		}
		cs, _ := e.r.ListContainers(e.ctx, pod.UID)
		for _, c := range cs {
			if c.Name == "nope" {
				t.Errorf("failed container left behind: %+v", c)
			}
		}
	})
	t.Run("runAsNonRoot", func(t *testing.T) {
		cfg := e.container(pod, "root", "true")
		cfg.RunAsNonRoot = true
		_, err := e.r.CreateContainer(e.ctx, cfg)
		if !errors.Is(err, ErrRunAsRoot) || !strings.Contains(err.Error(), "container has runAsNonRoot and image will run as root") {
			t.Errorf("CreateContainer error = %v", err)
		}
	})
	t.Run("stop ignoring SIGTERM is killed after grace", func(t *testing.T) {
		id := e.run(t, e.container(pod, "sleeper", "sh", "-c", `trap "" TERM; sleep 1000`))
		st := e.waitState(t, id, StateRunning)
		if st.Pid == 0 {
			t.Errorf("running container without pid")
		}
		if err := e.r.StopContainer(e.ctx, id, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		st, err := e.r.ContainerStatus(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != StateExited || st.ExitCode != 137 {
			t.Errorf("after stop: %s %d, want Exited 137", st.State, st.ExitCode)
		}
		if err := e.r.StopContainer(e.ctx, id, time.Second); err != nil {
			t.Errorf("second stop: %v", err)
		}
	})
	t.Run("OOM killed", func(t *testing.T) {
		cfg := e.container(pod, "oom", "sh", "-c", "head -c 50m /dev/zero | tail")
		cfg.Resources = Resources{MemoryLimit: 8 << 20}
		id := e.run(t, cfg)
		st := e.waitState(t, id, StateExited)
		if st.Reason != "OOMKilled" || st.ExitCode != 137 {
			t.Errorf("status = %d %q, want 137 OOMKilled", st.ExitCode, st.Reason)
		}
	})
}

func TestExec(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "exec-pod", func(p *PodConfig) { p.NetNS = "" })
	id := e.run(t, e.container(pod, "sleeper", "sleep", "1000"))
	e.waitState(t, id, StateRunning)
	tests := []struct {
		name   string
		cmd    []string
		tty    bool
		stdin  string
		open   bool // stdin that never ends
		code   int
		stdout string
		resize *TerminalSize
	}{
		{name: "cat /etc/passwd first line", cmd: []string{"head", "-n1", "/etc/passwd"}, stdout: "root:x:0:0:root:/root:/bin/sh\n"},
		{name: "exit 7", cmd: []string{"sh", "-c", "exit 7"}, code: 7},
		{name: "stdin", cmd: []string{"cat"}, stdin: "from stdin", stdout: "from stdin"},
		// As containerd, the exec ends when the command exits (issue 13).
		{name: "stdin left open", cmd: []string{"true"}, open: true},
		{name: "stdin left open exit 3", cmd: []string{"sh", "-c", "exit 3"}, open: true, code: 3},
		{name: "tty", cmd: []string{"sh", "-c", "sleep 0.3; test -t 1 && echo is-a-tty"}, tty: true, stdout: "is-a-tty\r\n"},
		{name: "tty exit code", cmd: []string{"sh", "-c", "exit 4"}, tty: true, code: 4},
		{name: "tty size", cmd: []string{"sh", "-c", "sleep 0.3; stty size"}, tty: true, resize: &TerminalSize{Width: 100, Height: 40}, stdout: "40 100\r\n"},
	}
	t.Run("not running", func(t *testing.T) {
		done := e.run(t, e.container(pod, "done", "true"))
		e.waitState(t, done, StateExited)
		if _, err := e.r.Exec(e.ctx, done, []string{"true"}, Streams{}); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Exec in exited container: %v, want ErrNotRunning", err)
		}
		if _, err := e.r.Exec(e.ctx, "nosuch", []string{"true"}, Streams{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Exec in unknown container: %v, want ErrNotFound", err)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			s := Streams{Stdout: &out, Stderr: &out, TTY: tt.tty}
			if tt.stdin != "" {
				s.Stdin = strings.NewReader(tt.stdin)
			}
			if tt.open {
				r, w := io.Pipe()
				defer w.Close()
				s.Stdin = r
			}
			if tt.resize != nil {
				ch := make(chan TerminalSize, 1)
				ch <- *tt.resize
				s.Resize = ch
			}
			code, err := e.r.Exec(e.ctx, id, tt.cmd, s)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || out.String() != tt.stdout {
				t.Errorf("Exec = %d %q, want %d %q", code, out.String(), tt.code, tt.stdout)
			}
		})
	}
}
