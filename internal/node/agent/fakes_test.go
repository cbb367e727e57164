package agent

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/pocketkube/pocketkube/internal/node/image"
	"github.com/pocketkube/pocketkube/internal/node/network"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
	"github.com/pocketkube/pocketkube/internal/node/volume"
)

// The fakes below are small in-memory implementations of what the agent
// consumes. Each logs the calls that change something, in order, so a test
// can assert what the agent asked for; a test sets a fault by filling in
// the matching error field.

var (
	_ Runtime = (*fakeRuntime)(nil)
	_ Images  = (*fakeImages)(nil)
	_ Network = (*fakeNetwork)(nil)
	_ Volumes = (*fakeVolumes)(nil)
)

// fakeRuntime keeps pods and containers in maps. Containers never exit by
// themselves: a test calls exit.
type fakeRuntime struct {
	clock clock.Clock

	mu         sync.Mutex
	calls      []string
	pods       map[string]runtime.PodConfig
	containers map[string]*runtime.ContainerStatus
	configs    map[string]runtime.ContainerConfig // by container name, the last created
	nextID     int
	// notReady holds the pods whose sandbox a test broke (loseSandbox)
	// until RunPod makes it again.
	notReady map[string]bool

	versionErr, createErr, startErr, stopErr error
	// onCreate, when set, sees each container config at its creation.
	onCreate func(runtime.ContainerConfig)
	// memoryUsage is what ContainerStats reports, by container name.
	memoryUsage map[string]uint64
}

func newFakeRuntime(c clock.Clock) *fakeRuntime {
	return &fakeRuntime{clock: c, pods: map[string]runtime.PodConfig{}, containers: map[string]*runtime.ContainerStatus{},
		configs: map[string]runtime.ContainerConfig{}, notReady: map[string]bool{}, memoryUsage: map[string]uint64{}}
}

func (r *fakeRuntime) logf(format string, args ...any) {
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

// takeCalls returns the calls logged since the last takeCalls.
func (r *fakeRuntime) takeCalls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

func (r *fakeRuntime) Version(context.Context) (string, error) {
	if r.versionErr != nil {
		return "", r.versionErr
	}
	return "1.3.0-fake", nil
}

func (r *fakeRuntime) RunPod(_ context.Context, cfg runtime.PodConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logf("RunPod %s", cfg.UID)
	r.pods[cfg.UID] = cfg
	delete(r.notReady, cfg.UID)
	return nil
}

func (r *fakeRuntime) PodReady(_ context.Context, uid string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pods[uid]; !ok {
		return false, runtime.ErrNotFound
	}
	return !r.notReady[uid], nil
}

func (r *fakeRuntime) RemovePod(_ context.Context, uid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logf("RemovePod %s", uid)
	for id, c := range r.containers {
		if c.PodUID == uid {
			delete(r.containers, id)
		}
	}
	delete(r.pods, uid)
	return nil
}

func (r *fakeRuntime) ListPods(context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.pods)), nil
}

func (r *fakeRuntime) CreateContainer(_ context.Context, cfg runtime.ContainerConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logf("CreateContainer %s/%s attempt %d", cfg.PodUID, cfg.Name, cfg.Attempt)
	r.configs[cfg.Name] = cfg
	if r.onCreate != nil {
		r.onCreate(cfg)
	}
	if r.createErr != nil {
		return "", r.createErr
	}
	r.nextID++
	id := fmt.Sprintf("c%d", r.nextID)
	r.containers[id] = &runtime.ContainerStatus{
		ID: id, PodUID: cfg.PodUID, Name: cfg.Name, Attempt: cfg.Attempt, State: runtime.StateCreated,
		CreatedAt: r.clock.Now(), Image: cfg.Image, LogPath: cfg.LogPath, Labels: cfg.Labels,
		Resources: new(cfg.Resources),
	}
	return id, nil
}

func (r *fakeRuntime) StartContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[id]
	r.logf("StartContainer %s/%s", c.PodUID, c.Name)
	if r.startErr != nil {
		// As runc: a container that failed to start is reported exited.
		c.State, c.ExitCode, c.Reason, c.FinishedAt = runtime.StateExited, 128, "StartError", r.clock.Now()
		return r.startErr
	}
	c.State, c.StartedAt = runtime.StateRunning, r.clock.Now()
	return nil
}

func (r *fakeRuntime) StopContainer(_ context.Context, id string, grace time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[id]
	r.logf("StopContainer %s/%s grace %s", c.PodUID, c.Name, grace)
	if r.stopErr != nil {
		return r.stopErr
	}
	if c.State != runtime.StateExited {
		c.State, c.ExitCode, c.Reason, c.FinishedAt = runtime.StateExited, 137, "Error", r.clock.Now()
	}
	return nil
}

func (r *fakeRuntime) RemoveContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[id]
	r.logf("RemoveContainer %s/%s attempt %d", c.PodUID, c.Name, c.Attempt)
	delete(r.containers, id)
	return nil
}

func (r *fakeRuntime) ListContainers(_ context.Context, podUID string) ([]*runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtime.ContainerStatus
	for _, c := range r.containers {
		if c.PodUID == podUID {
			cp := *c
			out = append(out, &cp)
		}
	}
	slices.SortFunc(out, func(a, b *runtime.ContainerStatus) int { return int(a.Attempt) - int(b.Attempt) })
	return out, nil
}

func (r *fakeRuntime) Exec(context.Context, string, []string, runtime.Streams) (int, error) {
	return 0, nil
}

// exit ends the latest attempt of pod uid's container name with code.
func (r *fakeRuntime) exit(uid, name string, code int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var latest *runtime.ContainerStatus
	for _, c := range r.containers {
		if c.PodUID == uid && c.Name == name && (latest == nil || c.Attempt > latest.Attempt) {
			latest = c
		}
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	latest.State, latest.ExitCode, latest.Reason, latest.FinishedAt = runtime.StateExited, code, reason, r.clock.Now()
}

// loseShim ends the latest attempt of pod uid's container name as the
// runtime reports a container whose shim died with it: exit code 255,
// reason Unknown.
func (r *fakeRuntime) loseShim(uid, name string) {
	r.exit(uid, name, 255)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.containers {
		if c.PodUID == uid && c.Name == name && c.ExitCode == 255 {
			c.Reason = "Unknown"
		}
	}
}

// reboot is what a host reboot leaves of the pod uid: every container
// exited as loseShim reports it, and a sandbox that is not ready.
func (r *fakeRuntime) reboot(uid string) {
	r.mu.Lock()
	r.notReady[uid] = true
	var names []string
	for _, c := range r.containers {
		if c.PodUID == uid && c.State != runtime.StateExited {
			names = append(names, c.Name)
		}
	}
	r.mu.Unlock()
	for _, n := range names {
		r.loseShim(uid, n)
	}
}

// addRunning adds a running container, as one left by an earlier run.
func (r *fakeRuntime) addRunning(uid, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pods[uid] = runtime.PodConfig{UID: uid}
	r.nextID++
	id := fmt.Sprintf("c%d", r.nextID)
	r.containers[id] = &runtime.ContainerStatus{ID: id, PodUID: uid, Name: name, State: runtime.StateRunning,
		StartedAt: r.clock.Now(), Image: "docker.io/library/busybox:latest"}
}

// fakeImages holds the images present on the node; Pull adds one unless
// pullErr is set.
type fakeImages struct {
	rootfs string

	mu      sync.Mutex
	present map[string]image.Image
	pulls   []string
	pullErr error
}

func newFakeImages(rootfs string, present ...string) *fakeImages {
	im := &fakeImages{rootfs: rootfs, present: map[string]image.Image{}}
	for _, ref := range present {
		im.present[ref] = fakeImage(ref)
	}
	return im
}

func fakeImage(ref string) image.Image {
	return image.Image{Name: ref, ID: "sha256:1d", Digest: "sha256:d1", Size: 1 << 20,
		Config: ggcrv1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}}
}

func (im *fakeImages) Get(_ context.Context, ref string) (image.Image, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	img, ok := im.present[ref]
	if !ok {
		return image.Image{}, fmt.Errorf("image %s: %w", ref, image.ErrNotFound)
	}
	return img, nil
}

func (im *fakeImages) Pull(_ context.Context, ref string, _ image.PullOptions) (image.Image, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.pulls = append(im.pulls, ref)
	if im.pullErr != nil {
		return image.Image{}, im.pullErr
	}
	im.present[ref] = fakeImage(ref)
	return im.present[ref], nil
}

func (im *fakeImages) Rootfs(context.Context, image.Image) (string, error) { return im.rootfs, nil }

func (im *fakeImages) pulled() []string {
	im.mu.Lock()
	defer im.mu.Unlock()
	return slices.Clone(im.pulls)
}

// fakeNetwork hands out 10.244.0.x addresses. Its Start (the agent's
// networkStarter) fails the ADD with addErr, at wait.
type fakeNetwork struct {
	mu       sync.Mutex
	sandbox  map[string]bool
	torndown []string
	next     byte
	addErr   error
}

var _ networkStarter = (*fakeNetwork)(nil)

func (n *fakeNetwork) Start(ctx context.Context, pod network.Pod) (string, func() (*network.Sandbox, error), error) {
	n.mu.Lock()
	addErr := n.addErr
	n.mu.Unlock()
	if addErr != nil {
		// As network.Manager: a failed ADD leaves nothing.
		return "/run/netns/" + pod.UID, func() (*network.Sandbox, error) { return nil, addErr }, nil
	}
	sb, err := n.Setup(ctx, pod)
	return "/run/netns/" + pod.UID, func() (*network.Sandbox, error) { return sb, err }, nil
}

func newFakeNetwork() *fakeNetwork { return &fakeNetwork{sandbox: map[string]bool{}, next: 10} }

func (n *fakeNetwork) Setup(_ context.Context, pod network.Pod) (*network.Sandbox, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sandbox[pod.UID] = true
	n.next++
	return &network.Sandbox{NetNS: "/run/netns/" + pod.UID, IPs: []net.IP{{10, 244, 0, n.next}}}, nil
}

func (n *fakeNetwork) Teardown(_ context.Context, uid string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.sandbox, uid)
	n.torndown = append(n.torndown, uid)
	return nil
}

func (n *fakeNetwork) List(context.Context) ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.sandbox)), nil
}

func (n *fakeNetwork) has(uid string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sandbox[uid]
}

// fakeVolumes gives each volume a directory under dir, without writing it.
type fakeVolumes struct {
	dir string

	mu       sync.Mutex
	pods     map[string]bool
	torndown []string
	// setupErr, when set, is what Setup returns for a volume of that name.
	setupErr map[string]error
}

func newFakeVolumes(dir string) *fakeVolumes { return &fakeVolumes{dir: dir, pods: map[string]bool{}} }

func (vs *fakeVolumes) Setup(_ context.Context, pod *v1.Pod, vol *v1.Volume, _ volume.Sources) (*volume.Mounted, error) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if err := vs.setupErr[vol.Name]; err != nil {
		return nil, err
	}
	vs.pods[string(pod.UID)] = true
	return &volume.Mounted{Path: filepath.Join(vs.dir, string(pod.UID), vol.Name), Managed: true}, nil
}

// PrepareSubPath returns the subPath's path, without a bind mount.
func (vs *fakeVolumes) PrepareSubPath(_ context.Context, sp volume.SubPath) (string, error) {
	return filepath.Join(sp.VolumePath, sp.Path), nil
}

func (vs *fakeVolumes) TeardownPod(_ context.Context, uid string) error {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	delete(vs.pods, uid)
	vs.torndown = append(vs.torndown, uid)
	return nil
}

func (vs *fakeVolumes) Pods() ([]string, error) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return slices.Sorted(maps.Keys(vs.pods)), nil
}

var _ Resizer = (*fakeRuntime)(nil)

// UpdateContainerResources records the new values as the container's.
func (r *fakeRuntime) UpdateContainerResources(_ context.Context, id string, res runtime.Resources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[id]
	r.logf("UpdateContainerResources %s/%s %+v", c.PodUID, c.Name, res)
	cur := runtime.Resources{}
	if c.Resources != nil {
		cur = *c.Resources
	}
	cur = cur.Updated(res)
	c.Resources = &cur
	return nil
}

func (r *fakeRuntime) UpdatePodResources(_ context.Context, uid string, res runtime.Resources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logf("UpdatePodResources %s %+v", uid, res)
	return nil
}

// ContainerStats reports the memory a test set with setMemoryUsage.
func (r *fakeRuntime) ContainerStats(_, id string) (runtime.CgroupStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return runtime.CgroupStats{MemoryUsageBytes: r.memoryUsage[r.containers[id].Name]}, nil
}

// PodStats reports the memory of every container set with memoryUsage.
func (r *fakeRuntime) PodStats(string) (runtime.CgroupStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum uint64
	for _, u := range r.memoryUsage {
		sum += u
	}
	return runtime.CgroupStats{MemoryUsageBytes: sum}, nil
}
