package volume

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2/ktesting"
)

func TestNew(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "PodsDir is required") {
		t.Errorf("New without PodsDir: err = %v", err)
	}
	m, err := New(Config{PodsDir: filepath.Join(t.TempDir(), "a", "pods")})
	if err != nil {
		t.Fatal(err)
	}
	if m.nodeAllocatable <= 0 {
		t.Errorf("default node allocatable memory = %d, want the host RAM", m.nodeAllocatable)
	}
}

func TestEmptyDir(t *testing.T) {
	requireRoot(t)
	mem := func(q string) v1.ResourceRequirements {
		return v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse(q)}}
	}
	tests := []struct {
		name       string
		src        *v1.EmptyDirVolumeSource
		containers []v1.ResourceRequirements
		podLimit   string
		fsGroup    *int64
		wantTmpfs  string // the size option in mountinfo; "" for a plain directory
		wantMode   os.FileMode
	}{
		{name: "disk", src: &v1.EmptyDirVolumeSource{}, wantMode: os.ModeDir | 0o777},
		{name: "no source is an emptyDir", src: nil, wantMode: os.ModeDir | 0o777},
		{name: "disk sizeLimit not enforced", src: &v1.EmptyDirVolumeSource{SizeLimit: ptr(resource.MustParse("1Mi"))}, wantMode: os.ModeDir | 0o777},
		{name: "disk fsGroup", src: &v1.EmptyDirVolumeSource{}, fsGroup: ptr[int64](3000), wantMode: os.ModeDir | os.ModeSetgid | 0o777},
		{name: "memory default is node allocatable", src: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory},
			wantTmpfs: "size=131072k", wantMode: os.ModeDir | os.ModeSticky | 0o777},
		{name: "memory sizeLimit", src: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("16Mi"))},
			wantTmpfs: "size=16384k", wantMode: os.ModeDir | os.ModeSticky | 0o777},
		{name: "memory pod limit when all containers have one", src: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory},
			containers: []v1.ResourceRequirements{mem("32Mi"), mem("16Mi")}, wantTmpfs: "size=49152k", wantMode: os.ModeDir | os.ModeSticky | 0o777},
		{name: "memory no pod limit when one container has none", src: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory},
			containers: []v1.ResourceRequirements{mem("32Mi"), {}}, wantTmpfs: "size=131072k", wantMode: os.ModeDir | os.ModeSticky | 0o777},
		{name: "memory pod-level limit", src: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory},
			containers: []v1.ResourceRequirements{{}}, podLimit: "24Mi", wantTmpfs: "size=24576k", wantMode: os.ModeDir | os.ModeSticky | 0o777},
		{name: "memory sizeLimit above pod limit", src: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("100Mi"))},
			containers: []v1.ResourceRequirements{mem("32Mi")}, wantTmpfs: "size=32768k", wantMode: os.ModeDir | os.ModeSticky | 0o777},
		{name: "memory sizeLimit above node allocatable", src: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("1Gi"))},
			wantTmpfs: "size=131072k", wantMode: os.ModeDir | os.ModeSticky | 0o777},
		{name: "memory fsGroup", src: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}, fsGroup: ptr[int64](3000),
			wantTmpfs: "size=131072k", wantMode: os.ModeDir | os.ModeSetgid | os.ModeSticky | 0o777},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			m := newTestManager(t, Config{NodeAllocatableMemory: 128 << 20})
			pod := testPod("uid-e")
			pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: tc.fsGroup}
			if tc.containers != nil {
				pod.Spec.Containers = nil
				for _, r := range tc.containers {
					pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Name: "c", Resources: r})
				}
			}
			if tc.podLimit != "" {
				pod.Spec.Resources = &v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse(tc.podLimit)}}
			}
			vol := &v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: tc.src}}
			mnt, err := m.Setup(ctx, pod, vol, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := m.podsDir + "/uid-e/volumes/kubernetes.io~empty-dir/scratch"
			if mnt.Path != want || mnt.ReadOnly || !mnt.Managed {
				t.Errorf("Setup = %+v, want path %s, read-write, managed", mnt, want)
			}
			fi, err := os.Stat(mnt.Path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tc.wantMode {
				t.Errorf("mode = %v, want %v", fi.Mode(), tc.wantMode)
			}
			if gid := fi.Sys().(*syscall.Stat_t).Gid; tc.fsGroup != nil && int64(gid) != *tc.fsGroup {
				t.Errorf("gid = %d, want fsGroup %d", gid, *tc.fsGroup)
			}
			mi := mountOf(t, mnt.Path)
			switch {
			case tc.wantTmpfs == "" && mi != nil:
				t.Errorf("%s is a mount point (%+v), want a plain directory", mnt.Path, mi)
			case tc.wantTmpfs != "" && (mi == nil || mi.FSType != "tmpfs" || !strings.Contains(","+mi.VFSOptions+",", ","+tc.wantTmpfs+",")):
				t.Errorf("mount of %s = %+v, want tmpfs with %s", mnt.Path, mi, tc.wantTmpfs)
			}
			// Idempotent: no second mount, content kept.
			if err := os.WriteFile(filepath.Join(mnt.Path, "keep"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Setup(ctx, pod, vol, nil); err != nil {
				t.Fatal(err)
			}
			if n, _ := mountsUnder(mnt.Path); tc.wantTmpfs != "" && len(n) != 1 {
				t.Errorf("after a second Setup: %d mounts at %s, want 1", len(n), mnt.Path)
			}
			if _, err := os.Stat(filepath.Join(mnt.Path, "keep")); err != nil {
				t.Errorf("a second Setup lost the volume's content: %v", err)
			}
		})
	}
}

func TestHostPath(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(root+"/dir", 0o700))
	must(os.WriteFile(root+"/file", []byte("f"), 0o600))
	l, err := net.Listen("unix", root+"/sock")
	must(err)
	t.Cleanup(func() { l.Close() })
	must(unix.Mknod(root+"/blk", unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))))
	must(unix.Mknod(root+"/chr", unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))

	tests := []struct {
		name     string
		path     string
		typ      *v1.HostPathType
		wantErr  string
		wantMode os.FileMode // of a created path
	}{
		{name: "no type on missing path", path: "/missing"},
		{name: "empty type on missing path", path: "/missing", typ: ptr(v1.HostPathUnset)},
		{name: "DirectoryOrCreate creates parents", path: "/new/sub", typ: ptr(v1.HostPathDirectoryOrCreate), wantMode: os.ModeDir | 0o755},
		{name: "DirectoryOrCreate existing", path: "/dir", typ: ptr(v1.HostPathDirectoryOrCreate)},
		{name: "DirectoryOrCreate on a file", path: "/file", typ: ptr(v1.HostPathDirectoryOrCreate),
			wantErr: "hostPath type check failed: <ROOT>/file is not a directory, it's a File"},
		{name: "Directory", path: "/dir", typ: ptr(v1.HostPathDirectory)},
		{name: "Directory missing", path: "/missing", typ: ptr(v1.HostPathDirectory),
			wantErr: `hostPath type check failed, <ROOT>/missing is not a directory, unable to determine its type: path "<ROOT>/missing" does not exist`},
		{name: "Directory on a socket", path: "/sock", typ: ptr(v1.HostPathDirectory),
			wantErr: "hostPath type check failed: <ROOT>/sock is not a directory, it's a Socket"},
		{name: "FileOrCreate creates", path: "/newfile", typ: ptr(v1.HostPathFileOrCreate), wantMode: 0o644},
		{name: "FileOrCreate missing parent", path: "/noparent/f", typ: ptr(v1.HostPathFileOrCreate),
			wantErr: "open <ROOT>/noparent/f: no such file or directory"},
		{name: "FileOrCreate on a dir", path: "/dir", typ: ptr(v1.HostPathFileOrCreate),
			wantErr: "hostPath type check failed: <ROOT>/dir is not a file, it's a Directory"},
		{name: "File", path: "/file", typ: ptr(v1.HostPathFile)},
		{name: "File on a char device", path: "/chr", typ: ptr(v1.HostPathFile),
			wantErr: "hostPath type check failed: <ROOT>/chr is not a file, it's a CharDevice"},
		{name: "Socket", path: "/sock", typ: ptr(v1.HostPathSocket)},
		{name: "Socket on a file", path: "/file", typ: ptr(v1.HostPathSocket),
			wantErr: "hostPath type check failed: <ROOT>/file is not a socket file, it's a File"},
		{name: "CharDevice", path: "/chr", typ: ptr(v1.HostPathCharDev)},
		{name: "CharDevice on a block device", path: "/blk", typ: ptr(v1.HostPathCharDev),
			wantErr: "hostPath type check failed: <ROOT>/blk is not a character device, it's a BlockDevice"},
		{name: "BlockDevice", path: "/blk", typ: ptr(v1.HostPathBlockDev)},
		{name: "BlockDevice missing", path: "/missing", typ: ptr(v1.HostPathBlockDev),
			wantErr: `hostPath type check failed, <ROOT>/missing is not a block device, unable to determine its type: path "<ROOT>/missing" does not exist`},
		{name: "invalid type", path: "/dir", typ: ptr(v1.HostPathType("Pipe")), wantErr: "Pipe is an invalid volume type"},
		{name: "backsteps", path: "/dir/../file", typ: ptr(v1.HostPathFile), wantErr: "invalid HostPath `<ROOT>/dir/../file`: must not contain '..'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			m := newTestManager(t, Config{})
			path := root + tc.path
			vol := &v1.Volume{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: path, Type: tc.typ}}}
			mnt, err := m.Setup(ctx, testPod("uid-h"), vol, nil)
			if tc.wantErr != "" {
				want := `MountVolume.SetUp failed for volume "host" : ` + strings.ReplaceAll(tc.wantErr, "<ROOT>", root)
				if err == nil || err.Error() != want {
					t.Fatalf("Setup error = %v\nwant %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mnt.Path != path || mnt.ReadOnly || mnt.Managed {
				t.Errorf("Setup = %+v, want path %s, read-write, not managed", mnt, path)
			}
			if tc.wantMode != 0 {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != tc.wantMode {
					t.Errorf("created %s with mode %v, want %v", path, fi.Mode(), tc.wantMode)
				}
			}
			if pods, _ := m.Pods(); len(pods) != 0 {
				t.Errorf("hostPath created pod directories %v", pods)
			}
		})
	}
}

func TestUnsupportedVolume(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{})
	tests := []struct {
		src  v1.VolumeSource
		want string
	}{
		{v1.VolumeSource{NFS: &v1.NFSVolumeSource{Server: "s", Path: "/"}}, `unsupported volume type "nfs" in volume "data"`},
		{v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: "d"}}, `unsupported volume type "csi" in volume "data"`},
		{v1.VolumeSource{ISCSI: &v1.ISCSIVolumeSource{}}, `unsupported volume type "iscsi" in volume "data"`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			_, err := m.Setup(ctx, testPod("uid-u"), &v1.Volume{Name: "data", VolumeSource: tc.src}, nil)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Setup error = %v, want %s", err, tc.want)
			}
		})
	}
	if _, err := m.Setup(ctx, testPod("../x"), &v1.Volume{Name: "v"}, nil); err == nil {
		t.Error("Setup accepted pod UID ../x")
	}
	if _, err := m.Setup(ctx, testPod("u"), &v1.Volume{Name: "../v"}, nil); err == nil {
		t.Error("Setup accepted volume name ../v")
	}
}

func TestTeardownPod(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{})
	objs := testObjects()
	pod := testPod("uid-t")
	for _, vol := range []v1.Volume{
		{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}},
		{Name: "disk", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "sec"}}},
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}},
	} {
		if _, err := m.Setup(ctx, pod, &vol, objs); err != nil {
			t.Fatal(err)
		}
	}
	other := testPod("uid-other")
	if _, err := m.Setup(ctx, other, &v1.Volume{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}}, nil); err != nil {
		t.Fatal(err)
	}
	podDir := filepath.Join(m.podsDir, "uid-t")
	// A busy mount (an open file) must not stop the teardown.
	f, err := os.Create(podDir + "/volumes/kubernetes.io~empty-dir/mem/open")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if mounts, _ := mountsUnder(podDir); len(mounts) != 2 {
		t.Fatalf("mounts under %s = %v, want 2 tmpfs", podDir, mounts)
	}
	if pods, err := m.Pods(); err != nil || strings.Join(pods, ",") != "uid-other,uid-t" {
		t.Errorf("Pods() = %v, %v", pods, err)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := m.TeardownPod(ctx, "uid-t"); err != nil {
			t.Fatalf("TeardownPod #%d: %v", i, err)
		}
		if mounts, _ := mountsUnder(podDir); len(mounts) != 0 {
			t.Errorf("after TeardownPod: mounts %v remain", mounts)
		}
		if _, err := os.Stat(podDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after TeardownPod: stat %s: %v, want not exist", podDir, err)
		}
	}
	if pods, _ := m.Pods(); strings.Join(pods, ",") != "uid-other" {
		t.Errorf("Pods() after teardown = %v, want [uid-other]", pods)
	}
	if mi := mountOf(t, m.podsDir+"/uid-other/volumes/kubernetes.io~empty-dir/mem"); mi == nil {
		t.Error("TeardownPod of uid-t unmounted uid-other's volume")
	}
	// A new Manager (the agent restarted) cleans up what the old one left.
	m2, err := New(Config{PodsDir: m.podsDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.TeardownPod(ctx, "uid-other"); err != nil {
		t.Fatal(err)
	}
	if mounts, _ := mountsUnder(m.podsDir); len(mounts) != 0 {
		t.Errorf("after TeardownPod by a new manager: mounts %v remain", mounts)
	}
	if err := m.TeardownPod(ctx, "../etc"); err == nil {
		t.Error("TeardownPod accepted UID ../etc")
	}
}
