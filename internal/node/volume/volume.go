package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/volume/util/subpath"
	"k8s.io/mount-utils"
	"k8s.io/utils/keymutex"
)

// Plugin directory names, as kubelet escapes its plugin names
// (kubernetes.io/empty-dir → kubernetes.io~empty-dir).
const (
	emptyDirPluginDir  = "kubernetes.io~empty-dir"
	configMapPluginDir = "kubernetes.io~configmap"
	secretPluginDir    = "kubernetes.io~secret"
)

// Config configures a Manager.
type Config struct {
	// PodsDir is required: the directory holding one directory per pod, laid
	// out as kubelet's <root>/pods (<PodsDir>/<podUID>/volumes/kubernetes.io~<plugin>/<volume>).
	// It is created (0750) if missing.
	PodsDir string
	// NodeAllocatableMemory is the size in bytes of a Memory emptyDir (and of a
	// secret's tmpfs) when neither its sizeLimit nor the pod's memory limit is
	// smaller, as kubelet uses node allocatable memory. Zero means the host's
	// total RAM.
	NodeAllocatableMemory int64
}

// Sources is how the Manager reads API objects; the agent passes its object
// watches, which read from the API server, within ctx, what they do not hold.
// Both return an error for which apierrors.IsNotFound is true when the object
// does not exist.
type Sources interface {
	ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*v1.Secret, error)
}

// Mounted is a prepared volume.
type Mounted struct {
	// Path is the host path to bind-mount into containers.
	Path string
	// ReadOnly is true when kubelet forces a read-only mount whatever the
	// volumeMount says (configMap, secret).
	ReadOnly bool
	// Managed is kubelet's volume.Attributes.Managed: the volume's content
	// belongs to the pod (false for hostPath), so it may be relabelled.
	Managed bool
}

// Manager prepares and removes pod volumes under Config.PodsDir.
type Manager struct {
	podsDir         string
	nodeAllocatable int64

	// podLocks serialises the work on one pod; pods hash to one of
	// podLockBuckets locks, so unrelated pods rarely wait on each other.
	podLocks keymutex.KeyMutex
	// subPaths is upstream kubelet's subPath preparation.
	subPaths subpath.Interface
	// claims are the pods' claim volumes, for their stats.
	claims claimRecord
}

// podLockBuckets is how many locks the pods share.
const podLockBuckets = 64

// New returns a Manager; it creates PodsDir if missing.
func New(cfg Config) (*Manager, error) {
	if cfg.PodsDir == "" {
		return nil, errors.New("create volume manager: PodsDir is required")
	}
	dir, err := filepath.Abs(cfg.PodsDir)
	if err != nil {
		return nil, fmt.Errorf("create volume manager: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create pods directory %s: %w", dir, err)
	}
	// Mount points are compared with /proc/self/mountinfo, which shows
	// resolved paths.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, fmt.Errorf("resolve pods directory %s: %w", cfg.PodsDir, err)
	}
	if cfg.NodeAllocatableMemory == 0 {
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return nil, fmt.Errorf("read host memory: %w", err)
		}
		cfg.NodeAllocatableMemory = int64(si.Totalram) * int64(si.Unit)
	}
	return &Manager{podsDir: dir, nodeAllocatable: cfg.NodeAllocatableMemory, podLocks: keymutex.NewHashed(podLockBuckets),
		subPaths: subpath.New(mount.NewWithoutSystemd(""))}, nil
}

// lockPod serialises work on one pod's directory.
func (m *Manager) lockPod(uid string) func() {
	m.podLocks.LockKey(uid)
	return func() { _ = m.podLocks.UnlockKey(uid) }
}

func validUID(uid string) error {
	if uid == "" || uid == "." || uid == ".." || strings.ContainsAny(uid, "/\x00") {
		return fmt.Errorf("invalid pod UID %q", uid)
	}
	return nil
}

// podDir returns <PodsDir>/<uid>.
func (m *Manager) podDir(uid string) string { return filepath.Join(m.podsDir, uid) }

// volumeDir creates the pod's directories as kubelet's makePodDataDirs does
// (0750) and returns <PodsDir>/<uid>/volumes/<plugin>/<name>, not created.
func (m *Manager) volumeDir(uid, plugin, name string) (string, error) {
	volumes := filepath.Join(m.podDir(uid), "volumes")
	for _, d := range []string{m.podDir(uid), volumes} {
		if err := os.Mkdir(d, 0o750); err != nil && !os.IsExist(err) {
			return "", err
		}
	}
	return filepath.Join(volumes, plugin, name), nil
}

// Setup prepares one volume of pod and returns what to bind-mount. It is
// idempotent: called again with unchanged objects it rewrites nothing; when a
// ConfigMap or Secret changed it swaps in the new files atomically. A missing
// non-optional ConfigMap, Secret or key fails with kubelet's texts
// (`configmap "x" not found`, `configmap references non-existent config key: k`).
func (m *Manager) Setup(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (*Mounted, error) {
	if pod == nil || vol == nil {
		return nil, errors.New("set up volume: nil pod or volume")
	}
	uid := string(pod.UID)
	if err := validUID(uid); err != nil {
		return nil, fmt.Errorf("set up volume %q of pod %s: %w", vol.Name, klog.KObj(pod), err)
	}
	if vol.Name == "" || vol.Name == "." || vol.Name == ".." || strings.ContainsAny(vol.Name, "/\x00") {
		return nil, fmt.Errorf("set up volume of pod %s: invalid volume name %q", klog.KObj(pod), vol.Name)
	}
	logger := klog.LoggerWithValues(klog.FromContext(ctx), "pod", klog.KObj(pod), "podUID", uid, "volume", vol.Name)
	ctx = klog.NewContext(ctx, logger)

	var (
		mnt *Mounted
		err error
	)
	switch s := vol.VolumeSource; {
	case s.HostPath != nil:
		// No pod directory is needed: the host path is the volume.
		mnt, err = setupHostPath(s.HostPath)
	case s.PersistentVolumeClaim != nil || s.Ephemeral != nil:
		if src == nil {
			return nil, fmt.Errorf("set up volume %q of pod %s: no object sources", vol.Name, klog.KObj(pod))
		}
		// Its errors are whole event texts already: kubelet names a
		// PV-backed volume after the PV.
		if mnt, err = m.setupClaim(ctx, pod, vol, src); err != nil {
			return nil, err
		}
		logger.V(4).Info("Set up volume", "path", mnt.Path, "readOnly", mnt.ReadOnly)
		return mnt, nil
	case s.EmptyDir != nil || isEmptySource(&s):
		unlock := m.lockPod(uid)
		defer unlock()
		mnt, err = m.setupEmptyDir(ctx, pod, vol)
	case s.ConfigMap != nil:
		if src == nil {
			return nil, fmt.Errorf("set up volume %q of pod %s: no object sources", vol.Name, klog.KObj(pod))
		}
		unlock := m.lockPod(uid)
		defer unlock()
		mnt, err = m.setupConfigMap(ctx, pod, vol, src)
	case s.Secret != nil:
		if src == nil {
			return nil, fmt.Errorf("set up volume %q of pod %s: no object sources", vol.Name, klog.KObj(pod))
		}
		unlock := m.lockPod(uid)
		defer unlock()
		mnt, err = m.setupSecret(ctx, pod, vol, src)
	case s.DownwardAPI != nil:
		unlock := m.lockPod(uid)
		defer unlock()
		mnt, err = m.setupDownwardAPI(ctx, pod, vol, src)
	case s.Image != nil:
		if src == nil {
			return nil, fmt.Errorf("set up volume %q of pod %s: no object sources", vol.Name, klog.KObj(pod))
		}
		unlock := m.lockPod(uid)
		defer unlock()
		mnt, err = m.setupImage(ctx, pod, vol, src)
	case s.Projected != nil:
		if src == nil {
			return nil, fmt.Errorf("set up volume %q of pod %s: no object sources", vol.Name, klog.KObj(pod))
		}
		unlock := m.lockPod(uid)
		defer unlock()
		mnt, err = m.setupProjected(ctx, pod, vol, src)
	default:
		return nil, fmt.Errorf("unsupported volume type %q in volume %q", sourceType(&s), vol.Name)
	}
	if err != nil {
		// The text of kubelet's FailedMount event.
		return nil, fmt.Errorf("MountVolume.SetUp failed for volume %q : %w", vol.Name, err)
	}
	logger.V(4).Info("Set up volume", "path", mnt.Path, "readOnly", mnt.ReadOnly)
	return mnt, nil
}

// isEmptySource reports whether no source is set: kubelet treats that as an
// emptyDir (API defaulting normally sets one).
func isEmptySource(s *v1.VolumeSource) bool {
	return sourceType(s) == ""
}

// sourceType returns the JSON name of the first source set in s ("nfs",
// "persistentVolumeClaim", ...), or "" when none is.
func sourceType(s *v1.VolumeSource) string {
	v := reflect.ValueOf(s).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" {
			name = t.Field(i).Name
		}
		return name
	}
	return ""
}

// TeardownPod unmounts every mount under the pod's directory (tmpfs of
// Memory emptyDirs and secrets, the subPath bind mounts of
// [Manager.PrepareSubPath] as kubelet's CleanSubPaths; deepest first) and removes
// <PodsDir>/<podUID>. It reads the mount table, not memory, so it also cleans
// up after a crash, and it is idempotent. It never removes anything while a
// mount remains below the pod directory.
func (m *Manager) TeardownPod(ctx context.Context, podUID string) error {
	if err := validUID(podUID); err != nil {
		return fmt.Errorf("tear down pod volumes: %w", err)
	}
	logger := klog.FromContext(ctx)
	unlock := m.lockPod(podUID)
	defer unlock()
	m.claims.forget(podUID)

	dir := m.podDir(podUID)
	mounts, err := mountsUnder(dir)
	if err != nil {
		return fmt.Errorf("tear down volumes of pod %s: %w", podUID, err)
	}
	// Deepest first, so nested mounts come off before their parents.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	var errs []error
	for _, mp := range mounts {
		if err := unmount(mp); err != nil {
			errs = append(errs, err)
			continue
		}
		logger.V(4).Info("Unmounted pod volume", "podUID", podUID, "path", mp)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down volumes of pod %s: %w", podUID, err)
	}
	if left, err := mountsUnder(dir); err != nil {
		return fmt.Errorf("tear down volumes of pod %s: %w", podUID, err)
	} else if len(left) > 0 {
		return fmt.Errorf("tear down volumes of pod %s: still mounted: %s", podUID, strings.Join(left, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove directory of pod %s: %w", podUID, err)
	}
	logger.V(4).Info("Removed pod volumes", "podUID", podUID)
	return nil
}

// Pods returns the UIDs of the pods that have a directory under PodsDir,
// sorted, so the agent can tear down pods it no longer knows.
func (m *Manager) Pods() ([]string, error) {
	entries, err := os.ReadDir(m.podsDir)
	if err != nil {
		return nil, fmt.Errorf("list pod directories: %w", err)
	}
	var uids []string
	for _, e := range entries {
		if e.IsDir() {
			uids = append(uids, e.Name())
		}
	}
	return uids, nil
}
