package runtime

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// A container's bundle holds its env, secrets included (config.json), so
// it is the owner's only, as containerd makes its bundle directories 0700
// (CVE-2021-41103): no file of it that holds the secret may be readable
// by other local users, neither may the directory be listed. A container
// running as a non-root user still starts from it.
func TestBundleIsOwnerOnly(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "bundle")
	const secret = "s3cr3t-value-of-the-pod"
	cfg := e.container(pod, "c", "sh", "-c", `test "$TOKEN" = `+secret+` && test "$(id -u)" = 1000`)
	cfg.Env = append(cfg.Env, "TOKEN="+secret)
	cfg.User = User{UID: 1000, GID: 1000}
	id := e.run(t, cfg)
	st := e.waitState(t, id, StateExited)
	if st.ExitCode != 0 {
		log, _ := os.ReadFile(cfg.LogPath)
		t.Errorf("container as uid 1000: exit %d, want 0; log:\n%s", st.ExitCode, log)
	}
	bundle := e.r.containerDir(id)
	fi, err := os.Stat(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("bundle dir %s: mode %v, want 0700", bundle, fi.Mode().Perm())
	}
	fi, err = os.Stat(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json: mode %v, want 0600", fi.Mode().Perm())
	}
	// Every file of the bundle (not the container's root filesystem)
	// that holds the secret is the owner's only.
	filepath.WalkDir(bundle, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != bundle {
			return fs.SkipDir // rootfs, upper, work
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Error(err)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) && info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s holds the secret with mode %v", path, info.Mode().Perm())
		}
		return nil
	})
}

// A container of a non-root user writes its termination message: the
// file is 0666 whatever the umask, as kubelet makes it.
func TestTerminationMessageAsNonRoot(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "termmsg")
	cfg := e.container(pod, "c", "sh", "-c", `echo -n bye > /dev/termination-log`)
	cfg.User = User{UID: 1000, GID: 1000}
	id := e.run(t, cfg)
	st := e.waitState(t, id, StateExited)
	if st.ExitCode != 0 || st.Message != "bye" {
		log, _ := os.ReadFile(cfg.LogPath)
		t.Errorf("exit %d message %q, want 0 \"bye\"; log:\n%s", st.ExitCode, st.Message, log)
	}
}
