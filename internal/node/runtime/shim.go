package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// shimConfig is the shim's input, written by CreateContainer to
// <bundle>/shim.json.
type shimConfig struct {
	ID, Bundle     string
	Runc, RuncRoot string
	LogPath        string // CRI log file; "" = discard output
	ExitFile       string
	TTY, Stdin     bool
	StdinOnce      bool
	OOMFile        string // memory.oom_control (v1) or memory.events (v2) of the container cgroup
}

// RunShim is the main of `pocketkube runtime-shim --bundle DIR`: it runs
// `runc create` for the bundle, reports "ok" or runc's error text on fd 3
// (then closes it), copies the container's output to the CRI log, waits for
// the container's init (as its child subreaper), writes the exit file and
// returns. It is started by CreateContainer in a session of its own, so it
// outlives pocketkube.
func RunShim(ctx context.Context, bundle string) error {
	report := os.NewFile(3, "report")
	ready := false
	err := runShim(ctx, bundle, func() {
		_, _ = report.WriteString("ok\n")
		report.Close()
		ready = true
	})
	if err != nil && !ready {
		_, _ = report.WriteString(err.Error())
		report.Close()
	}
	return err
}

func runShim(ctx context.Context, bundle string, ready func()) error {
	var cfg shimConfig
	if err := readJSON(filepath.Join(bundle, "shim.json"), &cfg); err != nil {
		return fmt.Errorf("read shim config: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become subreaper: %w", err)
	}
	var lw *logWriter
	if cfg.LogPath != "" {
		var err error
		if lw, err = newLogWriter(cfg.LogPath, defaultLogMaxSize, defaultLogMaxFiles); err != nil {
			return err
		}
		defer lw.Close()
	}
	runcLog := filepath.Join(bundle, "runc.log")
	pidFile := filepath.Join(bundle, "init.pid")
	args := []string{"--root", cfg.RuncRoot, "--log", runcLog, "--log-format", "json",
		"create", "--bundle", bundle, "--pid-file", pidFile}
	cmd := exec.CommandContext(ctx, cfg.Runc)
	var closeAfter []io.Closer
	var outputs []struct {
		stream string
		r      io.ReadCloser
	}
	var console chan *os.File
	var stderr strings.Builder
	as := &attachServer{stdinOnce: cfg.StdinOnce}
	ln, err := listenAttach(bundle)
	if err != nil {
		return err
	}
	defer ln.Close()
	if cfg.TTY {
		// runc passes the pty master over this socket. sun_path is short, so
		// the socket lives in a short temporary directory.
		sockDir, err := os.MkdirTemp("", "pkc")
		if err != nil {
			return err
		}
		defer os.RemoveAll(sockDir)
		sock := filepath.Join(sockDir, "c.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return fmt.Errorf("listen on console socket: %w", err)
		}
		defer ln.Close()
		console = make(chan *os.File, 1)
		go func() {
			f, err := receiveConsole(ln)
			if err != nil {
				f = nil
			}
			console <- f
		}()
		args = append(args, "--console-socket", sock)
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = outW, errW
		closeAfter = append(closeAfter, outW, errW)
		outputs = append(outputs, struct {
			stream string
			r      io.ReadCloser
		}{"stdout", outR}, struct {
			stream string
			r      io.ReadCloser
		}{"stderr", errR})
	}
	if cfg.Stdin && !cfg.TTY {
		inR, inW, err := os.Pipe()
		if err != nil {
			return err
		}
		cmd.Stdin = inR
		closeAfter = append(closeAfter, inR)
		// The write end stays open for the container's life (or until a
		// StdinOnce attach ends): a container with stdin and nobody attached
		// blocks on read, as with containerd.
		defer inW.Close()
		as.stdin = inW
	}
	cmd.Args = append([]string{cfg.Runc}, append(args, cfg.ID)...)
	runErr := cmd.Run()
	for _, c := range closeAfter {
		c.Close()
	}
	if runErr != nil {
		return fmt.Errorf("%s", runcError(runcLog, runErr, stderr.String()))
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("parse pid file: %w", err)
	}
	var copiers sync.WaitGroup
	if cfg.TTY {
		master := <-console
		if master == nil {
			return errors.New("receive console from runc")
		}
		defer master.Close()
		if cfg.Stdin {
			as.stdin = ttyStdin{master}
		}
		as.resize = func(sz TerminalSize) {
			_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
		}
		outputs = append(outputs, struct {
			stream string
			r      io.ReadCloser
		}{"stdout", master})
	}
	for _, o := range outputs {
		copiers.Add(1)
		typ := frameStdout
		if o.stream == "stderr" {
			typ = frameStderr
		}
		go func() {
			defer copiers.Done()
			copyLog(lw, o.stream, io.TeeReader(o.r, as.output(typ)))
		}()
	}
	go as.serve(ln)
	ready()

	code := waitInit(pid)
	// Everything in the container's PID namespace dies with its init, so
	// the pipes reach EOF; with the host PID namespace a daemonised child
	// may hold them open, hence the bound.
	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
	}
	as.closeAll()
	ex := exitStatus{ExitCode: code, FinishedAt: time.Now().UTC(), OOMKilled: readOOMKills(cfg.OOMFile) > 0}
	if lw != nil {
		lw.Close()
	}
	if err := writeJSONAtomic(cfg.ExitFile, ex); err != nil {
		return fmt.Errorf("write exit file: %w", err)
	}
	return nil
}

// waitInit reaps children (we are their subreaper) until pid exits and
// returns its exit code, 128+signal when killed by a signal.
func waitInit(pid int) int32 {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 255 // ECHILD: the init is not ours (cannot happen after runc create)
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int32(ws.Signal())
		}
		return int32(ws.ExitStatus())
	}
}

// runcError extracts runc's last error message from its JSON log.
func runcError(logFile string, runErr error, stderr string) string {
	b, _ := os.ReadFile(logFile)
	var msg string
	for _, line := range strings.Split(string(b), "\n") {
		var l struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Level == "error" && l.Msg != "" {
			msg = l.Msg
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(stderr)
	}
	if msg == "" {
		msg = runErr.Error()
	}
	return msg
}

// receiveConsole accepts runc's connection and returns the pty master it
// sends with SCM_RIGHTS.
func receiveConsole(ln net.Listener) (*os.File, error) {
	conn, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("read console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, fmt.Errorf("parse console message: %w", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, fmt.Errorf("parse console fd: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// copyLog copies r into the CRI log line by line. Lines longer than
// maxLogLineSize are split into partial ("P") entries, as containerd does.
// A pty master returns EIO once the terminal is closed: that is EOF.
func copyLog(lw *logWriter, stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLogLineSize)
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 || (err == nil && !isPrefix) {
			if lw != nil {
				lw.WriteEntry(stream, isPrefix, line)
			}
		}
		if err != nil {
			return
		}
	}
}

// Log rotation, as kubelet's containerLogMaxSize / containerLogMaxFiles
// defaults; rotation is done by the shim, not by a kubelet log manager.
const (
	maxLogLineSize     = 16 * 1024
	defaultLogMaxSize  = 10 << 20
	defaultLogMaxFiles = 5
)

// logWriter writes CRI log entries ("<RFC3339Nano> <stream> <F|P> <text>\n")
// to a file, rotating it to <path>.<timestamp> past maxSize and keeping at
// most maxFiles files (the live one included).
type logWriter struct {
	mu       sync.Mutex
	path     string
	f        *os.File
	size     int64
	maxSize  int64
	maxFiles int
}

func newLogWriter(path string, maxSize int64, maxFiles int) (*logWriter, error) {
	w := &logWriter{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *logWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", w.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log %s: %w", w.path, err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// WriteEntry writes one CRI log entry.
func (w *logWriter) WriteEntry(stream string, partial bool, line []byte) {
	tag := "F"
	if partial {
		tag = "P"
	}
	now := time.Now()
	entry := make([]byte, 0, len(line)+64)
	entry = now.AppendFormat(entry, time.RFC3339Nano)
	entry = append(entry, ' ')
	entry = append(entry, stream...)
	entry = append(entry, ' ')
	entry = append(entry, tag...)
	entry = append(entry, ' ')
	entry = append(entry, line...)
	entry = append(entry, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return
	}
	if w.size > 0 && w.size+int64(len(entry)) > w.maxSize {
		w.rotate(now)
	}
	n, _ := w.f.Write(entry)
	w.size += int64(n)
}

func (w *logWriter) rotate(now time.Time) {
	w.f.Close()
	w.f = nil
	_ = os.Rename(w.path, w.path+"."+now.UTC().Format("20060102-150405.000000000"))
	old, _ := filepath.Glob(w.path + ".*")
	// Timestamps sort lexically; drop the oldest beyond maxFiles-1.
	for len(old) > w.maxFiles-1 {
		_ = os.Remove(old[0])
		old = old[1:]
	}
	_ = w.open()
}

// Close closes the log file.
func (w *logWriter) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// ttyStdin is a terminal's input: closing it sends EOF (^D) instead of
// closing the terminal, whose output is still wanted.
type ttyStdin struct{ f *os.File }

func (t ttyStdin) Write(p []byte) (int, error) { return t.f.Write(p) }
func (t ttyStdin) Close() error {
	_, err := t.f.Write([]byte{4})
	return err
}
