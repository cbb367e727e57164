package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/sys/mountinfo"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeSources answers like the apiserver (plural resource in NotFound), so
// the tests also check that Setup turns that into kubelet's text.
type fakeSources struct {
	configMaps map[string]*v1.ConfigMap
	secrets    map[string]*v1.Secret
}

var _ Sources = (*fakeSources)(nil)

func (f *fakeSources) ConfigMap(_ context.Context, ns, name string) (*v1.ConfigMap, error) {
	if cm, ok := f.configMaps[ns+"/"+name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(v1.Resource("configmaps"), name)
}

func (f *fakeSources) Secret(_ context.Context, ns, name string) (*v1.Secret, error) {
	if s, ok := f.secrets[ns+"/"+name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(v1.Resource("secrets"), name)
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts tmpfs, chowns files and creates device nodes")
	}
}

func newTestManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	if cfg.PodsDir == "" {
		cfg.PodsDir = filepath.Join(t.TempDir(), "pods")
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Unmount whatever a failed test left, before TempDir's RemoveAll.
	t.Cleanup(func() {
		mounts, err := mountsUnder(m.podsDir)
		if err != nil {
			t.Error(err)
			return
		}
		sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
		for _, mp := range mounts {
			if err := unmount(mp); err != nil {
				t.Error(err)
			}
		}
	})
	return m
}

func testPod(uid string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pod", UID: types.UID(uid)},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c"}}},
	}
}

var tsDirRE = regexp.MustCompile(`\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+`)

// renderTree lists dir: one line per entry, sorted, as
// "<mode> <uid>:<gid> <path> <content or -> target>", with the atomic
// writer's current timestamped directory (..data's target) replaced by
// "..TS" and the previous one, kept until the next write, by "..TS-prev".
func renderTree(t testing.TB, dir string) string {
	t.Helper()
	current, _ := os.Readlink(filepath.Join(dir, "..data"))
	name := func(line string) string {
		return tsDirRE.ReplaceAllStringFunc(line, func(ts string) string {
			if ts == current {
				return "..TS"
			}
			return "..TS-prev"
		})
	}
	var lines []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st := fi.Sys().(*syscall.Stat_t)
		uid, gid := int(st.Uid), int(st.Gid)
		// Files of the test's own user read as root's, so the goldens
		// also hold for the tests that run without root.
		if uid == os.Geteuid() {
			uid = 0
		}
		if gid == os.Getegid() {
			gid = 0
		}
		line := fmt.Sprintf("%v %d:%d %s", fi.Mode(), uid, gid, rel)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %q", b)
		}
		lines = append(lines, name(line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// By path: the two timestamped directories' real names sort either way.
	sort.SliceStable(lines, func(i, j int) bool { return strings.Fields(lines[i])[2] < strings.Fields(lines[j])[2] })
	return strings.Join(lines, "\n") + "\n"
}

// goldenName turns a subtest name into a file name.
func goldenName(t *testing.T) string {
	return strings.NewReplacer(" ", "_", "#", "_").Replace(t.Name())
}

// mountOf returns the mountinfo entry of mountpoint, or nil.
func mountOf(t testing.TB, mountpoint string) *mountinfo.Info {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mountpoint))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) == 0 {
		return nil
	}
	return infos[len(infos)-1]
}

func ptr[T any](v T) *T { return &v }
