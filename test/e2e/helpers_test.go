//go:build e2e

package e2e

import (
	"errors"
	"os/exec"
	"strconv"
)

func asExit(err error, target **exec.ExitError) bool { return errors.As(err, target) }

func itoa(i int) string { return strconv.Itoa(i) }
