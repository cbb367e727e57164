package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/pocketkube/pocketkube/internal/node/image"
)

var alwaysReady = func() bool { return true }

const busybox = "docker.io/library/busybox:latest"

// fixture is sample-controller's: the fakes and the fake clientset an
// Agent is built on, with the pods preloaded into its informer's indexer,
// so that a test calls syncPod directly and looks at what the fakes were
// asked to do and at the status written to the API.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	clock    *clocktesting.FakeClock
	runtime  *fakeRuntime
	images   *fakeImages
	network  *fakeNetwork
	volumes  *fakeVolumes
	recorder *record.FakeRecorder
	agent    *Agent

	// pods go to the clientset and the pod informer's indexer, objects to
	// the clientset only.
	pods    []*v1.Pod
	objects []k8sruntime.Object
	// config, when set, changes the agent's Config before New.
	config func(*Config)
}

func newFixture(t *testing.T) *fixture {
	clock := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	return &fixture{
		t:       t,
		clock:   clock,
		runtime: newFakeRuntime(clock),
		images:  newFakeImages(t.TempDir(), busybox),
		network: newFakeNetwork(),
		volumes: newFakeVolumes(t.TempDir()),
		// Large enough for every event of a test: a full buffer would
		// block the agent.
		recorder: record.NewFakeRecorder(1000),
	}
}

// newAgent builds the Agent as Run would once the node has its pod CIDR.
func (f *fixture) newAgent() *Agent {
	objects := slices.Clone(f.objects)
	for _, p := range f.pods {
		objects = append(objects, p)
	}
	f.client = fake.NewSimpleClientset(objects...)
	cfg := Config{
		Client:     f.client,
		NodeName:   "node1",
		NodeIPs:    []net.IP{net.ParseIP("192.0.2.2")},
		DataDir:    f.t.TempDir(),
		Runtime:    f.runtime,
		Images:     f.images,
		Volumes:    f.volumes,
		NewNetwork: func(context.Context, string) (Network, error) { return f.network, nil },
		Clock:      f.clock,
	}
	if f.config != nil {
		f.config(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	a.network = f.network
	a.recorder = f.recorder
	a.podsSynced, a.servicesSynced = alwaysReady, alwaysReady
	for _, p := range f.pods {
		if err := a.informers.Core().V1().Pods().Informer().GetIndexer().Add(p); err != nil {
			f.t.Fatal(err)
		}
	}
	f.agent = a
	return a
}

// sync runs syncPod for pod namespace/name, then hands the informer the
// pod as the API now has it, as its watch would.
func (f *fixture) sync(ctx context.Context, name string) (time.Duration, error) {
	f.t.Helper()
	requeue, err := f.agent.syncPod(ctx, cache.ObjectName{Namespace: "ns", Name: name})
	f.refresh(ctx, name)
	return requeue, err
}

func (f *fixture) refresh(ctx context.Context, name string) {
	f.t.Helper()
	indexer := f.agent.informers.Core().V1().Pods().Informer().GetIndexer()
	pod, err := f.client.CoreV1().Pods("ns").Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if old, ok, _ := indexer.GetByKey("ns/" + name); ok {
			indexer.Delete(old)
		}
	case err != nil:
		f.t.Fatal(err)
	default:
		indexer.Update(pod)
	}
}

// mustSync is sync for a step that must succeed.
func (f *fixture) mustSync(ctx context.Context, name string) time.Duration {
	f.t.Helper()
	requeue, err := f.sync(ctx, name)
	if err != nil {
		f.t.Fatalf("syncPod %s: %v", name, err)
	}
	return requeue
}

// update changes pod name in the API and the informer.
func (f *fixture) update(ctx context.Context, name string, change func(*v1.Pod)) {
	f.t.Helper()
	pod, err := f.client.CoreV1().Pods("ns").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	change(pod)
	if _, err := f.client.CoreV1().Pods("ns").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.refresh(ctx, name)
}

func (f *fixture) status(ctx context.Context, name string) v1.PodStatus {
	f.t.Helper()
	pod, err := f.client.CoreV1().Pods("ns").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return pod.Status
}

// expectCalls checks the runtime calls since the last check.
func (f *fixture) expectCalls(want ...string) {
	f.t.Helper()
	got := f.runtime.takeCalls()
	slices.Sort(got) // killPod stops containers in parallel
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		f.t.Errorf("runtime calls (-want +got):\n%s", diff)
	}
}

// expectEvents checks the events recorded since the last check.
func (f *fixture) expectEvents(want ...string) {
	f.t.Helper()
	var got []string
	for {
		select {
		case e := <-f.recorder.Events:
			got = append(got, e)
			continue
		default:
		}
		break
	}
	if diff := cmp.Diff(want, got); diff != "" {
		f.t.Errorf("events (-want +got):\n%s", diff)
	}
}

// newPod is a pod as the API server hands it to the node: defaulted,
// bound, with one busybox container per name.
func newPod(name string, containers ...string) *v1.Pod {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(name + "-uid"), ResourceVersion: "1"},
		Spec: v1.PodSpec{
			NodeName:                      "node1",
			RestartPolicy:                 v1.RestartPolicyAlways,
			EnableServiceLinks:            new(true),
			TerminationGracePeriodSeconds: new(int64(30)),
			DNSPolicy:                     v1.DNSDefault,
		},
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, testContainer(c))
	}
	return pod
}

func testContainer(name string) v1.Container {
	return v1.Container{Name: name, Image: "busybox", ImagePullPolicy: v1.PullIfNotPresent,
		TerminationMessagePolicy: v1.TerminationMessageReadFile}
}

// describe gives a container status in one line, for exact comparison.
func describe(cs v1.ContainerStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", cs.Name)
	switch s := cs.State; {
	case s.Running != nil:
		fmt.Fprintf(&b, " running")
	case s.Terminated != nil:
		fmt.Fprintf(&b, " terminated %d %s", s.Terminated.ExitCode, s.Terminated.Reason)
	case s.Waiting != nil:
		fmt.Fprintf(&b, " waiting %s", s.Waiting.Reason)
		if s.Waiting.Message != "" {
			fmt.Fprintf(&b, " %q", s.Waiting.Message)
		}
	}
	fmt.Fprintf(&b, " restarts=%d", cs.RestartCount)
	if t := cs.LastTerminationState.Terminated; t != nil {
		fmt.Fprintf(&b, " last=%d", t.ExitCode)
	}
	if cs.Ready {
		b.WriteString(" ready")
	}
	return b.String()
}

// expectStatus checks pod name's phase, and its containers' statuses
// (init containers first) as describe gives them.
func (f *fixture) expectStatus(ctx context.Context, name string, phase v1.PodPhase, containers ...string) v1.PodStatus {
	f.t.Helper()
	s := f.status(ctx, name)
	var got []string
	for _, cs := range append(slices.Clone(s.InitContainerStatuses), s.ContainerStatuses...) {
		got = append(got, describe(cs))
	}
	if s.Phase != phase {
		f.t.Errorf("phase %s, want %s", s.Phase, phase)
	}
	if diff := cmp.Diff(containers, got); diff != "" {
		f.t.Errorf("container statuses (-want +got):\n%s", diff)
	}
	return s
}

func condition(s v1.PodStatus, t v1.PodConditionType) string {
	for _, c := range s.Conditions {
		if c.Type == t {
			return strings.TrimSpace(fmt.Sprintf("%s %s %s", c.Status, c.Reason, c.Message))
		}
	}
	return ""
}

func TestSyncPodCreatesAndKeepsRunning(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c"))
	f.newAgent()

	if requeue := f.mustSync(ctx, "web"); requeue != 0 {
		t.Errorf("requeue after %s, want none", requeue)
	}
	f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
	f.expectEvents(
		`Normal Pulled Container image "busybox" already present on machine`,
		"Normal Created Container created",
		"Normal Started Container started",
	)
	s := f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=0 ready")
	if s.PodIP != "10.244.0.11" || s.HostIP != "192.0.2.2" || s.QOSClass != v1.PodQOSBestEffort {
		t.Errorf("podIP %s hostIP %s qosClass %s", s.PodIP, s.HostIP, s.QOSClass)
	}
	for typ, want := range map[v1.PodConditionType]string{
		v1.PodReadyToStartContainers: "True", v1.PodInitialized: "True", v1.PodReady: "True", v1.ContainersReady: "True",
	} {
		if got := condition(s, typ); got != want {
			t.Errorf("condition %s = %q, want %q", typ, got, want)
		}
	}
	if got := s.ContainerStatuses[0]; got.ContainerID != "runc://c1" || got.ImageID != "docker.io/library/busybox@sha256:d1" || got.Image != busybox {
		t.Errorf("container ID %s image %s imageID %s", got.ContainerID, got.Image, got.ImageID)
	}
	if len(f.images.pulled()) != 0 {
		t.Errorf("pulled %v, want nothing: the image is present", f.images.pulled())
	}

	// Nothing changed: a second sync starts nothing and writes nothing.
	before := len(f.client.Actions())
	f.mustSync(ctx, "web")
	f.expectCalls()
	for _, a := range f.client.Actions()[before:] {
		if a.GetVerb() == "patch" {
			t.Errorf("unchanged status written: %v", a)
		}
	}
}

func TestSyncPodEnsuresImage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		present bool
		policy  v1.PullPolicy
		pullErr error
		// wantPull says whether Pull is called, wantStatus is the
		// container's status after the sync.
		wantPull   bool
		wantStatus string
	}{
		{name: "present", present: true, policy: v1.PullIfNotPresent, wantStatus: "c running restarts=0 ready"},
		{name: "missing", policy: v1.PullIfNotPresent, wantPull: true, wantStatus: "c running restarts=0 ready"},
		{name: "always", present: true, policy: v1.PullAlways, wantPull: true, wantStatus: "c running restarts=0 ready"},
		{name: "never and missing", policy: v1.PullNever,
			wantStatus: `c waiting ErrImageNeverPull "Container image \"busybox\" is not present with pull policy of Never" restarts=0`},
		// Offline with the image present: it is used (documented deviation).
		{name: "always and unreachable", present: true, policy: v1.PullAlways, pullErr: fmt.Errorf("pull busybox: %w", image.ErrUnreachable),
			wantPull: true, wantStatus: "c running restarts=0 ready"},
		{name: "missing and unreachable", policy: v1.PullIfNotPresent, pullErr: fmt.Errorf("pull busybox: %w", image.ErrUnreachable),
			wantPull: true, wantStatus: `c waiting ErrImagePull "pull busybox: registry unreachable" restarts=0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			if !tc.present {
				f.images = newFakeImages(t.TempDir())
			}
			f.images.pullErr = tc.pullErr
			pod := newPod("web", "c")
			pod.Spec.Containers[0].ImagePullPolicy = tc.policy
			f.pods = append(f.pods, pod)
			f.newAgent()
			f.syncPull(ctx, "web", tc.wantPull, tc.wantStatus)
		})
	}
}

// A container that keeps failing restarts at once the first time, then
// after kubelet's back-off of 10 s, doubling, with CrashLoopBackOff as its
// waiting reason meanwhile; old attempts beyond the previous one go.
func TestSyncPodCrashLoopBackOff(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c"))
	f.newAgent()

	f.mustSync(ctx, "web")
	f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
	f.expectEvents(`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started")

	f.runtime.exit("web-uid", "c", 1)
	f.mustSync(ctx, "web")
	f.expectCalls("CreateContainer web-uid/c attempt 1", "StartContainer web-uid/c")
	f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=1 last=1 ready")
	f.expectEvents(`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started")

	for i, backOff := range []time.Duration{10 * time.Second, 20 * time.Second} {
		f.runtime.exit("web-uid", "c", 1)
		requeue := f.mustSync(ctx, "web")
		f.expectCalls()
		if want := backOff + 10*time.Millisecond; requeue != want {
			t.Errorf("requeue after %s, want %s", requeue, want)
		}
		f.expectStatus(ctx, "web", v1.PodRunning, fmt.Sprintf(
			`c waiting CrashLoopBackOff "back-off %s restarting failed container=c pod=web_ns(web-uid)" restarts=%d last=1`, backOff, i+1))
		f.expectEvents("Warning BackOff Back-off restarting failed container c in pod web_ns(web-uid)")
		s := f.status(ctx, "web")
		if got := condition(s, v1.PodReady); got != "False ContainersNotReady containers with unready status: [c]" {
			t.Errorf("Ready = %q", got)
		}

		// Still backing off a moment before the back-off ends.
		f.clock.Step(backOff - time.Second)
		f.mustSync(ctx, "web")
		f.expectCalls()
		f.expectEvents("Warning BackOff Back-off restarting failed container c in pod web_ns(web-uid)")

		f.clock.Step(time.Second)
		f.mustSync(ctx, "web")
		attempt := i + 2
		f.expectCalls(fmt.Sprintf("CreateContainer web-uid/c attempt %d", attempt), "StartContainer web-uid/c",
			fmt.Sprintf("RemoveContainer web-uid/c attempt %d", attempt-2))
		f.expectStatus(ctx, "web", v1.PodRunning, fmt.Sprintf("c running restarts=%d last=1 ready", attempt))
		f.expectEvents(`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started")
	}
}

// A failed pull is ErrImagePull, then ImagePullBackOff with the last error
// until the back-off (10 s, doubling) allows the next pull.
func TestSyncPodImagePullBackOff(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.images = newFakeImages(t.TempDir())
	f.images.pullErr = errors.New("manifest unknown")
	f.pods = append(f.pods, newPod("web", "c"))
	f.newAgent()

	if requeue := f.mustSync(ctx, "web"); requeue != 10*time.Second {
		t.Errorf("requeue after %s, want 10s", requeue)
	}
	f.expectCalls("RunPod web-uid")
	f.expectStatus(ctx, "web", v1.PodPending, `c waiting ErrImagePull "manifest unknown" restarts=0`)
	f.expectEvents(
		`Normal Pulling Pulling image "busybox"`,
		`Warning Failed Failed to pull image "busybox": manifest unknown`,
		"Warning Failed Error: ErrImagePull",
	)

	backOff := `c waiting ImagePullBackOff "Back-off pulling image \"busybox\": ErrImagePull: manifest unknown" restarts=0`
	if requeue := f.mustSync(ctx, "web"); requeue != 10*time.Second {
		t.Errorf("requeue after %s, want 10s", requeue)
	}
	f.expectStatus(ctx, "web", v1.PodPending, backOff)
	f.expectEvents(`Normal BackOff Back-off pulling image "busybox"`)
	if got := len(f.images.pulled()); got != 1 {
		t.Errorf("%d pulls during the back-off, want 1", got)
	}

	f.clock.Step(10 * time.Second)
	if requeue := f.mustSync(ctx, "web"); requeue != 20*time.Second {
		t.Errorf("requeue after %s, want 20s", requeue)
	}
	f.expectStatus(ctx, "web", v1.PodPending, `c waiting ErrImagePull "manifest unknown" restarts=0`)
	f.mustSync(ctx, "web")
	f.expectStatus(ctx, "web", v1.PodPending, backOff)
	if got := len(f.images.pulled()); got != 2 {
		t.Errorf("%d pulls, want 2", got)
	}

	f.images.pullErr = nil
	f.clock.Step(20 * time.Second)
	f.mustSync(ctx, "web")
	f.expectCalls("CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
	f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=0 ready")
}

// Failures to make or start a container are the container's waiting
// reason, in kubelet's words, and not errors of the sync.
func TestSyncPodWaitingReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*v1.Pod, *fixture)
		want   string
		// phase is Pending unless set: an exited attempt counts as stopped.
		phase v1.PodPhase
	}{
		{
			name:   "invalid image name",
			change: func(p *v1.Pod, _ *fixture) { p.Spec.Containers[0].Image = "Busybox" },
			want:   `c waiting InvalidImageName "Failed to apply default image tag \"Busybox\": invalid image reference \"Busybox\": invalid reference format: repository name (library/Busybox) must be lowercase" restarts=0`,
		},
		{
			name: "missing configmap",
			change: func(p *v1.Pod, _ *fixture) {
				p.Spec.Containers[0].Env = []v1.EnvVar{{Name: "K", ValueFrom: &v1.EnvVarSource{
					ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "missing"}, Key: "k"}}}}
			},
			want: `c waiting CreateContainerConfigError "configmap \"missing\" not found" restarts=0`,
		},
		{
			name: "runAsNonRoot with a root image",
			change: func(p *v1.Pod, _ *fixture) {
				p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: new(true)}
			},
			want: `c waiting CreateContainerConfigError "container has runAsNonRoot and image will run as root (pod: \"web_ns(web-uid)\", container: c)" restarts=0`,
		},
		{
			name:   "create fails",
			change: func(_ *v1.Pod, f *fixture) { f.runtime.createErr = errors.New("runc create: boom") },
			want:   `c waiting CreateContainerError "runc create: boom" restarts=0`,
		},
		{
			name:   "start fails",
			change: func(_ *v1.Pod, f *fixture) { f.runtime.startErr = errors.New("runc start: boom") },
			want:   `c waiting RunContainerError "runc start: boom" restarts=0 last=128`,
			phase:  v1.PodRunning,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			pod := newPod("web", "c")
			tc.change(pod, f)
			f.pods = append(f.pods, pod)
			f.newAgent()
			f.mustSync(ctx, "web")
			phase := v1.PodPending
			if tc.phase != "" {
				phase = tc.phase
			}
			f.expectStatus(ctx, "web", phase, tc.want)
		})
	}
}

// A volume that cannot be set up keeps the containers ContainerCreating
// and is a Warning FailedMount event with the volume manager's error as it
// is: it already reads as kubelet's event does.
func TestSyncPodFailedMount(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.Volumes = []v1.Volume{{Name: "cfg", VolumeSource: v1.VolumeSource{
		ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}}}}}
	f.volumes.setupErr = map[string]error{"cfg": errors.New(`MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found`)}
	f.pods = append(f.pods, pod)
	f.newAgent()

	if _, err := f.sync(ctx, "web"); err == nil {
		t.Fatal("syncPod succeeded with a volume that fails")
	}
	f.expectEvents(`Warning FailedMount MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found`)
	f.expectCalls("RunPod web-uid")
	f.expectStatus(ctx, "web", v1.PodPending, "c waiting ContainerCreating restarts=0")
}

// Init containers run one at a time, in order, each to success, before
// the app containers, which wait as PodInitializing meanwhile.
func TestSyncPodInitContainers(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.InitContainers = []v1.Container{testContainer("i1"), testContainer("i2")}
	f.pods = append(f.pods, pod)
	f.newAgent()

	f.mustSync(ctx, "web")
	f.expectCalls("RunPod web-uid", "CreateContainer web-uid/i1 attempt 0", "StartContainer web-uid/i1")
	s := f.expectStatus(ctx, "web", v1.PodPending, "i1 running restarts=0", "i2 waiting PodInitializing restarts=0", "c waiting PodInitializing restarts=0")
	if got := condition(s, v1.PodInitialized); got != "False ContainersNotInitialized containers with incomplete status: [i1 i2]" {
		t.Errorf("Initialized = %q", got)
	}

	f.runtime.exit("web-uid", "i1", 0)
	f.mustSync(ctx, "web")
	f.expectCalls("CreateContainer web-uid/i2 attempt 0", "StartContainer web-uid/i2")
	f.expectStatus(ctx, "web", v1.PodPending, "i1 terminated 0 Completed restarts=0 ready", "i2 running restarts=0", "c waiting PodInitializing restarts=0")

	f.runtime.exit("web-uid", "i2", 0)
	f.mustSync(ctx, "web")
	f.expectCalls("CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
	s = f.expectStatus(ctx, "web", v1.PodRunning, "i1 terminated 0 Completed restarts=0 ready", "i2 terminated 0 Completed restarts=0 ready", "c running restarts=0 ready")
	if got := condition(s, v1.PodInitialized); got != "True" {
		t.Errorf("Initialized = %q", got)
	}
}

func TestSyncPodFailedInitContainer(t *testing.T) {
	for _, tc := range []struct {
		policy v1.RestartPolicy
		// wantCalls are the runtime's calls after the failure.
		wantCalls []string
		wantPhase v1.PodPhase
		wantInit  string
	}{
		{v1.RestartPolicyNever, nil, v1.PodFailed, "i1 terminated 1 Error restarts=0"},
		{v1.RestartPolicyOnFailure, []string{"CreateContainer web-uid/i1 attempt 1", "StartContainer web-uid/i1"}, v1.PodPending, "i1 running restarts=1 last=1"},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			pod := newPod("web", "c")
			pod.Spec.RestartPolicy = tc.policy
			pod.Spec.InitContainers = []v1.Container{testContainer("i1")}
			f.pods = append(f.pods, pod)
			f.newAgent()
			f.mustSync(ctx, "web")
			f.runtime.takeCalls()
			f.runtime.exit("web-uid", "i1", 1)
			f.mustSync(ctx, "web")
			f.expectCalls(tc.wantCalls...)
			f.expectStatus(ctx, "web", tc.wantPhase, tc.wantInit, "c waiting PodInitializing restarts=0")
			if tc.wantPhase != v1.PodFailed {
				return
			}
			// A failed pod gives its sandbox back but keeps its containers
			// and logs until it is deleted.
			f.mustSync(ctx, "web")
			f.expectCalls()
			if f.network.has("web-uid") {
				t.Error("the failed pod's network is still set up")
			}
			if got := condition(f.status(ctx, "web"), v1.PodReadyToStartContainers); got != "False" {
				t.Errorf("PodReadyToStartContainers = %q", got)
			}
		})
	}
}

// A pod being deleted is stopped within its deletion grace period, runs
// its preStop hook first, gives back all it held, and is then deleted for
// good with the UID as a precondition.
func TestSyncPodDeleteWithGrace(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c", "sidecar")
	pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}}
	pod.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	f.pods = append(f.pods, pod)
	f.newAgent()
	f.mustSync(ctx, "web")
	f.runtime.takeCalls()
	f.expectEvents(
		`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started",
		`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started",
	)

	f.update(ctx, "web", func(p *v1.Pod) {
		p.DeletionTimestamp = &metav1.Time{Time: f.clock.Now()}
		p.DeletionGracePeriodSeconds = new(int64(5))
		p.ResourceVersion = "2"
	})
	// The pod's logs are gone before the pod is: a client that sees the
	// pod deleted finds nothing of it on the node.
	logs := filepath.Dir(filepath.Dir(f.agent.logPath(pod, "c", 0)))
	if err := os.MkdirAll(filepath.Join(logs, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.client.PrependReactor("delete", "pods", func(core.Action) (bool, k8sruntime.Object, error) {
		if _, err := os.Stat(logs); err == nil {
			t.Errorf("logs %s still there when the pod is deleted", logs)
		}
		// As kubelet: the final status, written before the delete, is
		// terminal and keeps the stopped containers' exit codes (a pod
		// held by a finalizer, e.g. a Job's, shows it for good).
		o, err := f.client.Tracker().Get(v1.SchemeGroupVersion.WithResource("pods"), "ns", "web")
		if err != nil {
			t.Fatal(err)
		}
		st := o.(*v1.Pod).Status
		if st.Phase != v1.PodFailed {
			t.Errorf("final phase %s, want Failed", st.Phase)
		}
		for _, cs := range st.ContainerStatuses {
			if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 137 || cs.State.Terminated.Reason != "Error" {
				t.Errorf("final state of %s: %+v", cs.Name, cs.State)
			}
		}
		return false, nil, nil
	})
	before := len(f.client.Actions())
	f.mustSync(ctx, "web")
	f.expectCalls("StopContainer web-uid/c grace 5s", "StopContainer web-uid/sidecar grace 5s", "RemovePod web-uid")
	f.expectEvents("Normal Killing Stopping container c", "Normal Killing Stopping container sidecar")
	if f.network.has("web-uid") || !slices.Equal(f.volumes.torndown, []string{"web-uid"}) {
		t.Errorf("network set up: %v, volumes torn down: %v", f.network.has("web-uid"), f.volumes.torndown)
	}
	var deleted bool
	for _, a := range f.client.Actions()[before:] {
		if d, ok := a.(core.DeleteAction); ok {
			o := d.GetDeleteOptions()
			if o.GracePeriodSeconds == nil || *o.GracePeriodSeconds != 0 || o.Preconditions == nil || *o.Preconditions.UID != "web-uid" {
				t.Errorf("delete options %+v", o)
			}
			deleted = true
		}
	}
	if !deleted {
		t.Error("pod not deleted")
	}
	if _, err := f.client.CoreV1().Pods("ns").Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod still in the API: %v", err)
	}
	if uids := f.agent.uidsFor(cache.ObjectName{Namespace: "ns", Name: "web"}); len(uids) != 0 {
		t.Errorf("agent still knows %v", uids)
	}
	// The informer's delete event finds nothing left to do.
	f.mustSync(ctx, "web")
	f.expectCalls()
}

// After a restart, what the runtime, the network and the volumes still
// hold is adopted when its pod is still bound here, and killed otherwise.
func TestLeftoversAfterRestart(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("kept", "c"))
	f.runtime.addRunning("kept-uid", "c")
	f.network.sandbox["kept-uid"] = true
	f.runtime.addRunning("gone-uid", "c")
	f.volumes.pods["gone-uid"] = true
	f.volumes.pods["gone2-uid"] = true
	f.newAgent()

	if err := f.agent.adoptLeftovers(ctx); err != nil {
		t.Fatal(err)
	}
	f.expectCalls("StopContainer gone-uid/c grace 0s", "RemovePod gone-uid", "RemovePod gone2-uid")
	if !slices.Equal(f.volumes.torndown, []string{"gone-uid", "gone2-uid"}) {
		t.Errorf("volumes torn down %v", f.volumes.torndown)
	}
	// The adopted pod's running container is kept, not started again.
	f.mustSync(ctx, "kept")
	f.expectCalls("RunPod kept-uid")
	f.expectStatus(ctx, "kept", v1.PodRunning, "c running restarts=0 ready")
}

// A pod the agent knows only by its UID and key, from leftovers, has no
// spec: when it is gone from the API and stopping its container fails,
// the sync fails and is retried, and the pod is not removed meanwhile.
func TestKillLeftoverPodRetriesFailedStop(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c"))
	f.runtime.addRunning("web-uid", "c")
	f.newAgent()
	if err := f.agent.adoptLeftovers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.client.CoreV1().Pods("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.refresh(ctx, "web")

	f.runtime.stopErr = errors.New("runc kill: boom")
	if _, err := f.sync(ctx, "web"); err == nil || !strings.Contains(err.Error(), "runc kill: boom") {
		t.Errorf("syncPod error %v, want the stop's", err)
	}
	f.expectCalls("StopContainer web-uid/c grace 0s")
	if uids := f.agent.uidsFor(cache.ObjectName{Namespace: "ns", Name: "web"}); !slices.Equal(uids, []string{"web-uid"}) {
		t.Errorf("agent knows %v, want web-uid kept for the retry", uids)
	}

	f.runtime.stopErr = nil
	f.mustSync(ctx, "web")
	f.expectCalls("StopContainer web-uid/c grace 0s", "RemovePod web-uid")
	if uids := f.agent.uidsFor(cache.ObjectName{Namespace: "ns", Name: "web"}); len(uids) != 0 {
		t.Errorf("agent still knows %v", uids)
	}
}

// A pod whose sandbox cannot be made gets the status kubelet writes for a
// pod it could not start: Pending, containers ContainerCreating, not
// ready to start containers; the sync fails, to be retried.
func TestSyncPodStatusWithoutSandbox(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.Hostname = "Not_A_Hostname"
	f.pods = append(f.pods, pod)
	f.newAgent()
	if _, err := f.sync(ctx, "web"); err == nil {
		t.Fatal("syncPod succeeded without a sandbox")
	}
	f.expectCalls()
	s := f.expectStatus(ctx, "web", v1.PodPending, "c waiting ContainerCreating restarts=0")
	if got := condition(s, v1.PodReadyToStartContainers); got != "False" {
		t.Errorf("PodReadyToStartContainers = %q", got)
	}
	if s.StartTime == nil || !s.StartTime.Time.Equal(f.clock.Now()) {
		t.Errorf("startTime %v, want %v", s.StartTime, f.clock.Now())
	}
}

// On shutdown every pod stops within its grace period capped at
// shutdownGracePeriod, also one that already left the lister.
func TestStopAll(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c"))
	f.runtime.addRunning("old-uid", "c")
	f.newAgent()
	f.mustSync(ctx, "web")
	f.agent.remember(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "old", UID: "old-uid"}})
	f.runtime.takeCalls()
	f.agent.stopAll(ctx)
	f.expectCalls("StopContainer web-uid/c grace 3s", "RemovePod web-uid", "StopContainer old-uid/c grace 3s", "RemovePod old-uid")
}

// writeLogs creates each file (relative to the agent's logs directory).
func (f *fixture) writeLogs(files ...string) {
	f.t.Helper()
	for _, name := range files {
		p := filepath.Join(f.agent.cfg.DataDir, "logs", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("log\n"), 0o640); err != nil {
			f.t.Fatal(err)
		}
	}
}

// logFiles lists the files under the agent's logs directory.
func (f *fixture) logFiles() []string {
	f.t.Helper()
	root := filepath.Join(f.agent.cfg.DataDir, "logs")
	var files []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
		}
		return nil
	})
	slices.Sort(files)
	return files
}

// When an old attempt's container is removed, its log goes with the
// files the shim rotated it to (<n>.log.<timestamp>), as kubelet's log
// manager cleans <path>*; the later attempts' logs stay.
func TestRemovedContainerTakesRotatedLogs(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c"))
	f.newAgent()
	f.mustSync(ctx, "web")
	dir := "ns_web_web-uid/c/"
	f.writeLogs(dir+"0.log", dir+"0.log.20261201-100000.000000001", dir+"0.log.20261201-100001.000000002")
	f.runtime.exit("web-uid", "c", 1)
	f.mustSync(ctx, "web") // attempt 1, at once
	f.writeLogs(dir+"1.log", dir+"1.log.20261201-100002.000000003")
	f.runtime.exit("web-uid", "c", 1)
	f.mustSync(ctx, "web") // back-off
	f.clock.Step(backOffInitial)
	f.mustSync(ctx, "web") // attempt 2; attempt 0 is removed
	f.writeLogs(dir + "2.log")
	f.expectCalls("CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c", "RunPod web-uid",
		"CreateContainer web-uid/c attempt 1", "StartContainer web-uid/c",
		"CreateContainer web-uid/c attempt 2", "StartContainer web-uid/c", "RemoveContainer web-uid/c attempt 0")
	want := []string{dir + "1.log", dir + "1.log.20261201-100002.000000003", dir + "2.log"}
	if diff := cmp.Diff(want, f.logFiles()); diff != "" {
		t.Errorf("log files (-want +got):\n%s", diff)
	}
}

// The logs of pods deleted while the node was down (directories whose UID
// no pod bound here has) go when the agent starts, as kubelet's container
// GC evicts pod log directories; those of the pods still here stay,
// rotated files included.
func TestLeftoverLogsAfterRestart(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("kept", "c"))
	f.newAgent()
	f.writeLogs(
		"ns_kept_kept-uid/c/0.log", "ns_kept_kept-uid/c/0.log.20261201-100000.000000001",
		"ns_gone_gone-uid/c/0.log", "ns_gone_gone-uid/c/0.log.20261201-100000.000000001",
		// The same name, an earlier incarnation.
		"ns_kept_old-kept-uid/c/3.log",
	)
	if err := f.agent.adoptLeftovers(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"ns_kept_kept-uid/c/0.log", "ns_kept_kept-uid/c/0.log.20261201-100000.000000001"}
	if diff := cmp.Diff(want, f.logFiles()); diff != "" {
		t.Errorf("log files (-want +got):\n%s", diff)
	}
}

// syncPull syncs pod name once and checks whether it pulled its image and
// the status it then has (Running when wantStatus says "running", else
// Pending).
func (f *fixture) syncPull(ctx context.Context, name string, wantPull bool, wantStatus string) {
	f.t.Helper()
	f.mustSync(ctx, name)
	if got := len(f.images.pulled()) == 1; got != wantPull {
		f.t.Errorf("pulled %v, want a pull: %v", f.images.pulled(), wantPull)
	}
	phase := v1.PodRunning
	if !strings.Contains(wantStatus, "running") {
		phase = v1.PodPending
	}
	f.expectStatus(ctx, name, phase, wantStatus)
}

// terminalStatus is kubelet's final status for a deleted pod: getPhase
// with podIsTerminal, then the status manager's TerminatePod.
func TestTerminalStatus(t *testing.T) {
	exited := func(code int32) v1.ContainerState {
		return v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: code}}
	}
	waiting := v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	running := v1.ContainerState{Running: &v1.ContainerStateRunning{}}
	for _, tc := range []struct {
		name      string
		apiPhase  v1.PodPhase
		apiState  v1.ContainerState // the container's state in the API before the deletion
		restart   v1.RestartPolicy
		inits     []v1.ContainerState
		state     v1.ContainerState // its state once stopped
		wantPhase v1.PodPhase
		wantCode  int32 // -1: still waiting
	}{
		{name: "stopped with 137", apiPhase: v1.PodRunning, apiState: running, restart: v1.RestartPolicyAlways, state: exited(137), wantPhase: v1.PodFailed, wantCode: 137},
		{name: "exited 0 on SIGTERM, restart Always", apiPhase: v1.PodRunning, apiState: running, restart: v1.RestartPolicyAlways, state: exited(0), wantPhase: v1.PodSucceeded, wantCode: 0},
		{name: "never created, no init containers", apiPhase: v1.PodPending, apiState: waiting, restart: v1.RestartPolicyNever, state: waiting, wantPhase: v1.PodFailed, wantCode: 137},
		{name: "init container never done: app stays waiting", apiPhase: v1.PodPending, apiState: waiting, restart: v1.RestartPolicyNever,
			inits: []v1.ContainerState{running}, state: waiting, wantPhase: v1.PodFailed, wantCode: -1},
		{name: "terminal in the API stays", apiPhase: v1.PodSucceeded, apiState: exited(0), restart: v1.RestartPolicyNever, state: exited(0), wantPhase: v1.PodSucceeded, wantCode: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := newPod("p", "c")
			pod.Spec.RestartPolicy = tc.restart
			pod.Status.Phase = tc.apiPhase
			pod.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "c", State: tc.apiState}}
			s := &v1.PodStatus{Phase: tc.apiPhase, ContainerStatuses: []v1.ContainerStatus{{Name: "c", State: tc.state}}}
			for i, st := range tc.inits {
				name := fmt.Sprintf("init%d", i)
				pod.Spec.InitContainers = append(pod.Spec.InitContainers, v1.Container{Name: name})
				pod.Status.InitContainerStatuses = append(pod.Status.InitContainerStatuses, v1.ContainerStatus{Name: name, State: st})
				s.InitContainerStatuses = append(s.InitContainerStatuses, v1.ContainerStatus{Name: name, State: exited(137)})
			}
			terminalStatus(pod, s)
			if s.Phase != tc.wantPhase {
				t.Errorf("phase %s, want %s", s.Phase, tc.wantPhase)
			}
			got := s.ContainerStatuses[0].State
			switch {
			case tc.wantCode < 0 && got.Waiting == nil:
				t.Errorf("state %+v, want still waiting", got)
			case tc.wantCode >= 0 && (got.Terminated == nil || got.Terminated.ExitCode != tc.wantCode):
				t.Errorf("state %+v, want terminated with %d", got, tc.wantCode)
			}
		})
	}
}

// A deleted pod that a finalizer keeps in the API is terminated once: its
// final status stays, and later events for it do nothing (kubelet's pod
// workers know the pod finished).
func TestSyncPodHeldByFinalizerTerminatesOnce(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c"))
	f.newAgent()
	f.mustSync(ctx, "web")
	f.runtime.takeCalls()
	f.update(ctx, "web", func(p *v1.Pod) {
		p.DeletionTimestamp = &metav1.Time{Time: f.clock.Now()}
		p.DeletionGracePeriodSeconds = new(int64(5))
		p.Finalizers = []string{"example.com/hold"}
	})
	// The finalizer keeps the pod: the final delete leaves it in place.
	f.client.PrependReactor("delete", "pods", func(core.Action) (bool, k8sruntime.Object, error) {
		return true, nil, nil
	})
	f.mustSync(ctx, "web")
	f.expectCalls("StopContainer web-uid/c grace 5s", "RemovePod web-uid")
	f.refresh(ctx, "web")
	before := len(f.client.Actions())
	f.mustSync(ctx, "web")
	f.expectCalls()
	for _, a := range f.client.Actions()[before:] {
		if a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("API write for a terminated pod: %v", a)
		}
	}
	s := f.status(ctx, "web")
	if term := s.ContainerStatuses[0].State.Terminated; s.Phase != v1.PodFailed || term == nil || term.ExitCode != 137 || term.Reason != "Error" {
		t.Errorf("status %s %+v, want Failed with 137 Error", s.Phase, s.ContainerStatuses[0].State)
	}
}

// ContainerRestartRules (beta, on in 1.37): a container's own restart
// policy and its rules on exit codes decide over the pod's, as kubelet's
// podutil.ContainerShouldRestart; a rule that restarts all containers is
// refused (PodFeatureUnsupported), not ignored.
func TestSyncPodContainerRestartPolicy(t *testing.T) {
	always, never := v1.ContainerRestartPolicyAlways, v1.ContainerRestartPolicyNever
	restartOn42 := []v1.ContainerRestartRule{{Action: v1.ContainerRestartRuleActionRestart,
		ExitCodes: &v1.ContainerRestartRuleOnExitCodes{Operator: v1.ContainerRestartRuleOnExitCodesOpIn, Values: []int32{42}}}}
	for _, tc := range []struct {
		name      string
		policy    *v1.ContainerRestartPolicy
		rules     []v1.ContainerRestartRule
		exit      int32
		restarted bool
		phase     v1.PodPhase
	}{
		{name: "pod Never, container Always", policy: &always, exit: 1, restarted: true, phase: v1.PodRunning},
		{name: "pod Never, container Never, rule matches", policy: &never, rules: restartOn42, exit: 42, restarted: true, phase: v1.PodRunning},
		{name: "pod Never, container Never, rule does not match", policy: &never, rules: restartOn42, exit: 1, phase: v1.PodFailed},
		{name: "pod Never, no container policy", exit: 1, phase: v1.PodFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			pod := newPod("web", "c")
			pod.Spec.RestartPolicy = v1.RestartPolicyNever
			pod.Spec.Containers[0].RestartPolicy = tc.policy
			pod.Spec.Containers[0].RestartPolicyRules = tc.rules
			f.pods = append(f.pods, pod)
			f.newAgent()
			f.mustSync(ctx, "web")
			f.runtime.takeCalls()
			f.runtime.exit("web-uid", "c", tc.exit)
			f.mustSync(ctx, "web")
			calls := f.runtime.takeCalls()
			if got := slices.Contains(calls, "CreateContainer web-uid/c attempt 1"); got != tc.restarted {
				t.Errorf("restarted %v, want %v (calls %v)", got, tc.restarted, calls)
			}
			if s := f.status(ctx, "web"); s.Phase != tc.phase {
				t.Errorf("phase %s, want %s", s.Phase, tc.phase)
			}
		})
	}
	t.Run("RestartAllContainers refused", func(t *testing.T) {
		_, ctx := ktesting.NewTestContext(t)
		f := newFixture(t)
		pod := newPod("web", "c")
		pod.Spec.Containers[0].RestartPolicy = &never
		pod.Spec.Containers[0].RestartPolicyRules = []v1.ContainerRestartRule{{Action: v1.ContainerRestartRuleActionRestartAllContainers,
			ExitCodes: &v1.ContainerRestartRuleOnExitCodes{Operator: v1.ContainerRestartRuleOnExitCodesOpIn, Values: []int32{42}}}}
		f.pods = append(f.pods, pod)
		f.newAgent()
		f.mustSync(ctx, "web")
		f.expectCalls()
		s := f.status(ctx, "web")
		if s.Phase != v1.PodFailed || s.Reason != "PodFeatureUnsupported" ||
			s.Message != "Pod was rejected: Pod requires node features that are not available: RestartAllContainersOnContainerExits" {
			t.Errorf("status %s %q %q", s.Phase, s.Reason, s.Message)
		}
	})
}

// spec.readinessGates: the pod is Ready only once every gate's condition,
// set by someone else, is True (kubelet's GeneratePodReadyCondition).
func TestSyncPodReadinessGates(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: "example.com/a"}, {ConditionType: "example.com/b"}}
	f.pods = append(f.pods, pod)
	f.newAgent()
	f.mustSync(ctx, "web")
	want := `False ReadinessGatesNotReady corresponding condition of pod readiness gate "example.com/a" does not exist., corresponding condition of pod readiness gate "example.com/b" does not exist.`
	if got := condition(f.status(ctx, "web"), v1.PodReady); got != want {
		t.Errorf("Ready = %q, want %q", got, want)
	}
	f.update(ctx, "web", func(p *v1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: "example.com/a", Status: v1.ConditionTrue},
			v1.PodCondition{Type: "example.com/b", Status: v1.ConditionFalse})
	})
	f.mustSync(ctx, "web")
	want = `False ReadinessGatesNotReady the status of pod readiness gate "example.com/b" is not "True", but False`
	if got := condition(f.status(ctx, "web"), v1.PodReady); got != want {
		t.Errorf("Ready = %q, want %q", got, want)
	}
	f.update(ctx, "web", func(p *v1.Pod) {
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == "example.com/b" {
				p.Status.Conditions[i].Status = v1.ConditionTrue
			}
		}
	})
	f.mustSync(ctx, "web")
	s := f.status(ctx, "web")
	if got := condition(s, v1.PodReady); got != "True" {
		t.Errorf("Ready = %q with both gates True", got)
	}
	if got := condition(s, "example.com/a"); got != "True" {
		t.Errorf("the gate's own condition = %q, want it kept", got)
	}
}
