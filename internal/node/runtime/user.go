package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/pocketkube/pocketkube/internal/inroot"
)

// User is the identity a container process runs as.
type User struct {
	UID, GID       uint32
	AdditionalGIDs []uint32
}

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// maxUserFile bounds what is read of an image's /etc/passwd and /etc/group.
const maxUserFile = 4 << 20

// readColonFile calls fn with the fields of each line of the file name in
// rootfs, which is read as the container would see it: symlinks resolve
// inside rootfs, never to the host's files, and a FIFO or an oversized file
// is an error instead of a hang. A missing file has no lines.
func readColonFile(rootfs, name string, fields int, fn func([]string)) error {
	data, err := inroot.ReadFile(rootfs, name, maxUserFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) < fields {
			continue
		}
		fn(parts)
	}
	return nil
}

func readPasswd(rootfs string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readColonFile(rootfs, "/etc/passwd", 4, func(p []string) {
		uid, err1 := strconv.ParseUint(p[2], 10, 32)
		gid, err2 := strconv.ParseUint(p[3], 10, 32)
		if err1 == nil && err2 == nil {
			out = append(out, passwdEntry{name: p[0], uid: uint32(uid), gid: uint32(gid)})
		}
	})
	return out, err
}

func readGroup(rootfs string) ([]groupEntry, error) {
	var out []groupEntry
	err := readColonFile(rootfs, "/etc/group", 3, func(p []string) {
		gid, err := strconv.ParseUint(p[2], 10, 32)
		if err != nil {
			return
		}
		g := groupEntry{name: p[0], gid: uint32(gid)}
		if len(p) > 3 && p[3] != "" {
			g.members = strings.Split(p[3], ",")
		}
		out = append(out, g)
	})
	return out, err
}

// ResolveUser resolves an image or pod user against rootfs' /etc/passwd and
// /etc/group with containerd's WithUser semantics: "" is root; "name" or
// "uid" takes the primary GID from /etc/passwd (a numeric UID not in passwd
// gets GID 0; an unknown name is an error); "user:group" resolves both parts
// (numeric parts are taken as is). AdditionalGIDs are the groups of
// /etc/group listing the user's name as a member (containerd's
// WithAdditionalGIDs), without the primary GID.
func ResolveUser(rootfs, spec string) (User, error) {
	passwd, err := readPasswd(rootfs)
	if err != nil {
		return User{}, fmt.Errorf("read passwd of %s: %w", rootfs, err)
	}
	groups, err := readGroup(rootfs)
	if err != nil {
		return User{}, fmt.Errorf("read group of %s: %w", rootfs, err)
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var u User
	var name string
	if userPart == "" {
		userPart = "0"
	}
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		u.UID = uint32(n)
		for _, p := range passwd {
			if p.uid == u.UID {
				u.GID, name = p.gid, p.name
				break
			}
		}
	} else {
		found := false
		for _, p := range passwd {
			if p.name == userPart {
				u.UID, u.GID, name, found = p.uid, p.gid, p.name, true
				break
			}
		}
		if !found {
			return User{}, fmt.Errorf("resolve user %q: no such user in /etc/passwd", userPart)
		}
	}
	if hasGroup && groupPart != "" {
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			u.GID = uint32(n)
		} else {
			found := false
			for _, g := range groups {
				if g.name == groupPart {
					u.GID, found = g.gid, true
					break
				}
			}
			if !found {
				return User{}, fmt.Errorf("resolve group %q: no such group in /etc/group", groupPart)
			}
		}
	}
	if name != "" {
		for _, g := range groups {
			if g.gid == u.GID {
				continue
			}
			for _, m := range g.members {
				if m == name {
					u.AdditionalGIDs = append(u.AdditionalGIDs, g.gid)
					break
				}
			}
		}
	}
	return u, nil
}
