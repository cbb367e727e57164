package image

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrInUse is wrapped by Remove's error when containers use the image. The
// text is containers/storage's (ErrImageUsedByContainer), which podman
// prints for `podman rmi`.
var ErrInUse = errors.New("image is in use by a container")

// InUseError is an image that Remove refused because containers use its
// root filesystem. It reads as podman's refusal:
// `image used by <container IDs>: image is in use by a container`.
type InUseError struct {
	// Containers are the IDs of the containers that use the image, as the
	// runtime names their bundle directories.
	Containers []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("image used by %s: %v", strings.Join(e.Containers, ", "), ErrInUse)
}

// Unwrap returns ErrInUse.
func (e *InUseError) Unwrap() error { return ErrInUse }

// mountinfo is where the kernel lists this mount namespace's mounts: the
// host's, which the node and `pocketkube images` share.
const mountinfo = "/proc/self/mountinfo"

// inUse returns the image IDs (hex) whose root filesystems are the lower
// directory of a mounted overlayfs, each with the containers that mount
// them. The runtime mounts every container's root filesystem that way
// until it removes the container, so a mount is the one record of use that
// holds across processes and restarts, and that a container holds for as
// long as deleting the directory would break it.
func (s *Store) inUse() (map[string][]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	root := s.path("rootfs")
	used := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - overlay overlay rw,lowerdir=...
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, super := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(super) < 3 || super[0] != "overlay" {
			continue
		}
		container := filepath.Base(filepath.Dir(unescapeMount(fields[4])))
		for _, opt := range strings.Split(super[2], ",") {
			key, value, _ := strings.Cut(opt, "=")
			if key != "lowerdir" && key != "lowerdir+" {
				continue
			}
			for _, dir := range strings.Split(unescapeMount(value), ":") {
				if dir == "" {
					continue // "::" precedes data-only layers
				}
				dir = filepath.Clean(dir)
				if filepath.Dir(dir) == root {
					id := filepath.Base(dir)
					used[id] = append(used[id], container)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	return used, nil
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space) in
// mountinfo fields.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
