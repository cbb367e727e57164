package runtime

import (
	"bytes"
	"strings"
	"testing"
)

func TestAttach(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "attach")
	tests := []struct {
		name           string
		tty            bool
		args           []string
		stdin          string
		stdout, stderr string
		log            string
	}{
		{name: "stdin once", args: []string{"sh", "-c", "read line; echo got $line; echo err >&2; cat; echo done"},
			stdin: "hello\nmore\n", stdout: "got hello\nmore\ndone\n", stderr: "err\n", log: "stdout F got hello"},
		{name: "tty", tty: true, args: []string{"sh", "-c", "read line; echo got $line"},
			stdin: "hi\n", stdout: "hi\r\ngot hi\r\n", log: "stdout F got hi\r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.container(pod, strings.ReplaceAll(tt.name, " ", "-"), tt.args...)
			cfg.Stdin, cfg.StdinOnce, cfg.TTY = true, true, tt.tty
			id := e.run(t, cfg)
			var stdout, stderr bytes.Buffer
			err := e.r.Attach(e.ctx, id, Streams{Stdin: strings.NewReader(tt.stdin), Stdout: &stdout, Stderr: &stderr, TTY: tt.tty})
			if err != nil {
				t.Fatal(err)
			}
			if stdout.String() != tt.stdout || stderr.String() != tt.stderr {
				t.Errorf("attach got stdout %q stderr %q, want %q %q", stdout.String(), stderr.String(), tt.stdout, tt.stderr)
			}
			st := e.waitState(t, id, StateExited)
			if st.ExitCode != 0 {
				t.Errorf("exit code %d", st.ExitCode)
			}
			e.r.RemoveContainer(e.ctx, id)
		})
	}
}
