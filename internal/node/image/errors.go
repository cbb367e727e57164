package image

import (
	"errors"
	"fmt"
)

// Errors for errors.Is. Pull wraps exactly one of ErrNotFound,
// ErrUnauthorized and ErrUnreachable when it can tell why it failed, so the
// node can report kubelet's reasons (ErrImagePull with the registry's cause).
var (
	// ErrNotFound means the image is not in the store, or the registry has
	// no such repository or tag (manifest unknown).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized means the registry refused the credentials or asked for
	// some.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnreachable means the registry could not be reached (DNS, connection
	// refused, timeout).
	ErrUnreachable = errors.New("registry unreachable")
)

// PullError is a failed pull. Its message reads like containerd's, which
// kubelet shows in the pod's events:
// `failed to pull and unpack image "docker.io/library/nope:latest": ...`.
type PullError struct {
	// Image is the normalised name of the image.
	Image string
	// Reason is ErrNotFound, ErrUnauthorized, ErrUnreachable or nil.
	Reason error
	// Err is the underlying error.
	Err error
}

func (e *PullError) Error() string {
	return fmt.Sprintf("failed to pull and unpack image %q: %v", e.Image, e.Err)
}

// Unwrap returns the reason and the underlying error.
func (e *PullError) Unwrap() []error {
	if e.Reason == nil {
		return []error{e.Err}
	}
	return []error{e.Reason, e.Err}
}

// UnsafeEntryError is a layer entry the store refuses to unpack.
type UnsafeEntryError struct {
	// Entry is the entry's name in the tar archive.
	Entry string
	// Reason says what is wrong with it.
	Reason string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("refusing tar entry %q: %s", e.Entry, e.Reason)
}
