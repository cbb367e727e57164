package framework

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"
)

// RootfsTar writes a root filesystem tar to a file, streaming (the
// pocketkube binary alone is ~200 MB). Parent directories are added
// before their entries, each name is written once (the first wins), and
// the first error sticks and is returned by Close.
type RootfsTar struct {
	f    *os.File
	tw   *tar.Writer
	now  time.Time
	seen map[string]bool
	err  error
}

func NewRootfsTar(file string) (*RootfsTar, error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	return &RootfsTar{f: f, tw: tar.NewWriter(f), now: time.Now(), seen: map[string]bool{}}, nil
}

// tarName turns an absolute or relative path into a tar entry name.
func tarName(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// parents adds the directories above name.
func (r *RootfsTar) parents(name string) {
	if d := path.Dir(name); d != "." && d != "/" {
		r.Dir(d, 0o755)
	}
}

func (r *RootfsTar) header(h *tar.Header) bool {
	if r.err != nil || r.seen[h.Name] {
		return false
	}
	r.seen[h.Name] = true
	h.ModTime = r.now
	r.err = r.tw.WriteHeader(h)
	return r.err == nil
}

// Dir adds directory name and its parents.
func (r *RootfsTar) Dir(name string, mode int64) {
	name = tarName(name)
	if r.seen[name] {
		return
	}
	r.parents(name)
	r.header(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode})
}

// File adds a regular file with data.
func (r *RootfsTar) File(name string, mode int64, data []byte) {
	name = tarName(name)
	r.parents(name)
	if r.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}) {
		_, r.err = r.tw.Write(data)
	}
}

// Symlink adds name pointing at target.
func (r *RootfsTar) Symlink(name, target string) {
	name = tarName(name)
	r.parents(name)
	r.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
}

// HostFile adds the host's file src (symlinks followed) as name.
func (r *RootfsTar) HostFile(src, name string, mode int64) {
	if r.err != nil {
		return
	}
	f, err := os.Open(src)
	if err != nil {
		r.err = err
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		r.err = err
		return
	}
	name = tarName(name)
	r.parents(name)
	if r.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: st.Size()}) {
		_, r.err = io.Copy(r.tw, f)
	}
}

// Binary adds the host's executable src as name, with every library ldd
// lists for it at the path ldd gives (the dynamic loader included), so
// that it runs as on the host. A static binary has none.
func (r *RootfsTar) Binary(src, name string) {
	r.HostFile(src, name, 0o755)
	libs, err := SharedLibraries(src)
	if err != nil {
		if r.err == nil {
			r.err = err
		}
		return
	}
	for _, lib := range libs {
		r.HostFile(lib, lib, 0o755)
	}
}

// Busybox adds the host's busybox-static as /bin/busybox with a symlink
// per applet (one not already added), /etc/passwd and /etc/group with
// root and nobody, and the usual top directories: the busybox image of
// BusyboxTar.
func (r *RootfsTar) Busybox() {
	bin, err := exec.LookPath("busybox")
	if err != nil {
		r.err = err
		return
	}
	list, err := exec.Command(bin, "--list").Output()
	if err != nil {
		r.err = fmt.Errorf("busybox --list: %w", err)
		return
	}
	for _, d := range []string{"bin", "etc", "dev", "proc", "sys", "root", "home", "var", "usr/bin"} {
		r.Dir(d, 0o755)
	}
	r.Dir("tmp", 0o1777)
	r.HostFile(bin, "bin/busybox", 0o755)
	r.File("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"))
	r.File("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n"))
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			r.Symlink("bin/"+applet, "busybox")
		}
	}
}

// Close finishes the tar and returns the first error.
func (r *RootfsTar) Close() error {
	if r.err == nil {
		r.err = r.tw.Close()
	}
	if err := r.f.Close(); r.err == nil {
		r.err = err
	}
	return r.err
}

// SharedLibraries returns the absolute paths ldd prints for binary: each
// "name => /path (addr)" and the loader's "/path (addr)". A static binary
// ("not a dynamic executable", ldd exits 1) has none.
func SharedLibraries(binary string) ([]string, error) {
	out, err := exec.Command("ldd", binary).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", binary, err, out)
	}
	var libs []string
	s := bufio.NewScanner(strings.NewReader(string(out)))
	for s.Scan() {
		for _, f := range strings.Fields(s.Text()) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
				break
			}
		}
	}
	return libs, s.Err()
}

// AppendFileToTar writes to dst the entries of the tar src followed by the
// executable file as name.
func AppendFileToTar(src, dst, file, name string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return out.Close()
}
