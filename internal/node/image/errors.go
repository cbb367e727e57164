package image

import (
	"errors"
	"fmt"
	"syscall"
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

// DigestError is a blob whose content does not match the digest it is
// stored under: an archive claiming another image's digests. The store
// refuses it before anything is written, as containerd's content store
// refuses a commit ("unexpected commit digest").
type DigestError struct {
	// Digest is the digest the blob claims.
	Digest string
	// Actual is the digest of its content.
	Actual string
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("blob %s does not match its digest: its content is %s", e.Digest, e.Actual)
}

// DiskSpaceError is a write the store refused because it would leave less
// than the reserve free on the filesystem of Dir: an image larger than the
// disk stops with this error instead of filling the disk the node, etcd
// and the pods share. It wraps syscall.ENOSPC.
type DiskSpaceError struct {
	// What is being written ("layer sha256:...", "the archive").
	What string
	// Dir is a directory on the filesystem that is short of space.
	Dir string
	// Need is the number of bytes the write needs.
	Need int64
	// Free is the number of bytes free on the filesystem.
	Free int64
	// Reserve is the number of bytes the store leaves free.
	Reserve int64
}

func (e *DiskSpaceError) Error() string {
	return fmt.Sprintf("not enough disk space for %s: it needs %s, %s has %s free and the image store keeps %s free",
		e.What, mib(e.Need), e.Dir, mib(e.Free), mib(e.Reserve))
}

// Unwrap returns syscall.ENOSPC.
func (e *DiskSpaceError) Unwrap() error { return syscall.ENOSPC }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
