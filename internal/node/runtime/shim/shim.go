package shim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Main is the main of the shim binary: args are the command-line arguments
// without the program name (`--bundle DIR`, `--standby --bundle ___…` for
// [Standby], or `pause` for [Pause]). It runs [Run] until the
// container exits (or until SIGINT/SIGTERM while `runc create` runs) and
// returns the process exit code: 0, 1 on an error (printed on stderr) or 2
// on bad arguments.
func Main(args []string) int {
	if len(args) == 1 && args[0] == PauseArg {
		return Pause()
	}
	fs := flag.NewFlagSet("pocketkube-shim", flag.ContinueOnError)
	bundle := fs.String("bundle", "", "container bundle directory written by the runtime")
	standby := fs.Bool(StandbyFlag, false, "wait for the bundle directory on fd 4 (see Standby)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *bundle == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: pocketkube-shim [--standby] --bundle DIR")
		return 2
	}
	if *standby && strings.Trim(*bundle, string(StandbyPlaceholder)) != "" {
		fmt.Fprintln(os.Stderr, "usage: pocketkube-shim --standby --bundle "+string(StandbyPlaceholder)+"...")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := func() error { return Run(ctx, *bundle) }
	if *standby {
		run = func() error { return Standby(ctx) }
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// StandbyFlag is the shim's flag (--standby) that starts it ahead of its
// container: see [Standby].
const StandbyFlag = "standby"

// StandbyReady is the byte a shim started with --standby writes on its
// report pipe (fd 3) when it waits for its bundle, before the report that
// Run writes there.
const StandbyReady = '.'

// StandbyPlaceholder fills the --bundle argument of a shim started with
// --standby, as long as the longest bundle path it may be given: the
// shim writes the path over it (setBundleArg), so that its command line
// (ps, pgrep -f) names its bundle as any shim's does.
const StandbyPlaceholder = '_'

// setBundleArg writes bundle over the placeholder argument that follows
// --bundle in the process's own argument memory, padded with NULs, which
// /proc/PID/cmdline shows: on Linux, Go's os.Args are that memory.
// Nothing is written when bundle is longer than the placeholder.
func setBundleArg(bundle string) {
	for i := 1; i+1 < len(os.Args); i++ {
		ph := os.Args[i+1]
		if os.Args[i] != "--bundle" || ph == "" || strings.Trim(ph, string(StandbyPlaceholder)) != "" || len(bundle) > len(ph) {
			continue
		}
		mem := unsafe.Slice(unsafe.StringData(ph), len(ph))
		n := copy(mem, bundle)
		clear(mem[n:])
		return
	}
}

// maxBundlePath bounds what Standby reads from fd 4.
const maxBundlePath = 4096

// Standby is a shim started before the runtime knows its container, so
// that a container's creation does not wait for a process to start: it
// writes StandbyReady on fd 3, reads the bundle directory from fd 4 until
// the runtime closes it, writes it over its --bundle placeholder, sends its
// stdout and stderr to the bundle's shim.log (where the runtime sends
// those of a shim it starts for a bundle) and goes on as [Run]. Nothing
// read (the runtime let it go, or ended) makes it return nil at once.
func Standby(ctx context.Context) error {
	// The runtime takes a waiting shim only once it said it waits.
	if _, err := os.NewFile(3, "report").Write([]byte{StandbyReady}); err != nil {
		return fmt.Errorf("report standby: %w", err)
	}
	f := os.NewFile(4, "bundle")
	b, err := io.ReadAll(io.LimitReader(f, maxBundlePath))
	f.Close()
	bundle := strings.TrimSpace(string(b))
	if err != nil || bundle == "" {
		return nil
	}
	setBundleArg(bundle)
	log, err := os.OpenFile(filepath.Join(bundle, LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(log.Fd()), fd, 0); err != nil {
			log.Close()
			return fmt.Errorf("send output to %s: %w", LogFile, err)
		}
	}
	log.Close()
	return Run(ctx, bundle)
}

// Run supervises the container of bundle: it runs `runc create` for the
// bundle, reports "ok" (with when runc create ran, see [ParseReady]) or
// runc's error text on fd 3 (then closes it), copies
// the container's output to the CRI log, waits for the container's init (as
// its child subreaper), writes the exit file and returns. The runtime starts
// the shim in a session of its own, so it outlives pocketkube. ctx only
// bounds `runc create`.
func Run(ctx context.Context, bundle string) error {
	// The runtime reads the report until every copy of it is closed: no
	// process the shim starts may keep one. runc closes what it inherits,
	// but crun's container init keeps its inherited descriptors until it
	// execs the container's process, at start, which waits for the report.
	unix.CloseOnExec(3)
	report := os.NewFile(3, "report")
	ready := false
	err := runShim(ctx, bundle, func(runcStart, runcEnd time.Time) {
		_, _ = report.WriteString(readyReport(runcStart, runcEnd))
		report.Close()
		ready = true
	})
	if err != nil && !ready {
		_, _ = report.WriteString(err.Error())
		report.Close()
	}
	return err
}

func runShim(ctx context.Context, bundle string, ready func(runcStart, runcEnd time.Time)) error {
	var cfg Config
	if err := readJSON(filepath.Join(bundle, ConfigFile), &cfg); err != nil {
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
	runcStart := time.Now()
	runErr := startHiding(cmd, cfg.HideMount)
	if runErr == nil {
		runErr = cmd.Wait()
	}
	runcEnd := time.Now()
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
		as.resize = func(width, height uint16) {
			_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width})
		}
		outputs = append(outputs, struct {
			stream string
			r      io.ReadCloser
		}{"stdout", master})
	}
	for _, o := range outputs {
		copiers.Add(1)
		typ := FrameStdout
		if o.stream == "stderr" {
			typ = FrameStderr
		}
		go func() {
			defer copiers.Done()
			copyLog(lw, o.stream, io.TeeReader(o.r, as.output(typ)))
		}()
	}
	go as.serve(ln)
	ready(runcStart, runcEnd)

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
	ex := ExitStatus{ExitCode: code, FinishedAt: time.Now().UTC(), OOMKilled: readOOMKills(cfg.OOMFile) > 0}
	if lw != nil {
		lw.Close()
	}
	if err := writeJSONAtomic(cfg.ExitFile, ex); err != nil {
		return fmt.Errorf("write exit file: %w", err)
	}
	return nil
}

// startHiding starts cmd in a mount namespace of its own without the
// mount at hide (when hide is not ""): a copy of the shim's, made a slave
// of it so that mounts made on the host later still reach the container
// (mountPropagation HostToContainer), with hide detached. The namespace
// is made on an OS thread locked for the purpose and never unlocked, so
// that the thread, its namespace with it, ends with the goroutine: Go
// starts the process from the calling thread, which it inherits.
func startHiding(cmd *exec.Cmd, hide string) error {
	if hide == "" {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("unshare the mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			errc <- fmt.Errorf("make the mount namespace a slave: %w", err)
			return
		}
		if err := unix.Unmount(hide, unix.MNT_DETACH); err != nil {
			errc <- fmt.Errorf("hide %s: %w", hide, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
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

// readOOMKills returns the oom_kill counter of a memory.oom_control (v1) or
// memory.events (v2) file; 0 when unreadable.
func readOOMKills(file string) uint64 {
	if file == "" {
		return 0
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == "oom_kill" {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
