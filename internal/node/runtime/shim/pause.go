package shim

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// PauseArg is the argument that makes the shim binary act as a pod's
// pause process (Main(["pause"])) instead of a shim.
const PauseArg = "pause"

// Pause is the pod sandbox's init, as the pause image's: the runtime runs
// it as PID 1 of the PID namespace a shareProcessNamespace pod's
// containers join, where it holds that namespace open and reaps the
// orphans the containers leave (they are reparented to it). It returns 0
// on SIGINT or SIGTERM, as pause does.
func Pause() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGINT, unix.SIGTERM)
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			return 0
		}
		for {
			var ws unix.WaitStatus
			if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}
