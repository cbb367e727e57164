package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
	kubeletqos "k8s.io/kubernetes/pkg/kubelet/qos"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
	"github.com/pocketkube/pocketkube/internal/node/downward"
	"github.com/pocketkube/pocketkube/internal/node/image"
	"github.com/pocketkube/pocketkube/internal/node/network"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// labelImageRef holds a container's image as status.imageID shows it:
// <repository>@<manifest digest>.
const labelImageRef = "io.pocketkube.image.ref"

// Kubelet's waiting reasons (pkg/kubelet/container/sync_result.go,
// pkg/kubelet/images/types.go).
const (
	reasonContainerCreating    = "ContainerCreating"
	reasonPodInitializing      = "PodInitializing"
	reasonCrashLoopBackOff     = "CrashLoopBackOff"
	reasonErrImagePull         = "ErrImagePull"
	reasonImagePullBackOff     = "ImagePullBackOff"
	reasonErrImageNeverPull    = "ErrImageNeverPull"
	reasonInvalidImageName     = "InvalidImageName"
	reasonCreateConfigError    = "CreateContainerConfigError"
	reasonCreateContainerError = "CreateContainerError"
	reasonRunContainerError    = "RunContainerError"
)

// setupSandbox gives the pod its network namespace, its /etc files and
// its cgroup and shared namespaces: kubelet's RunPodSandbox.
func (a *Agent) setupSandbox(ctx context.Context, pod *v1.Pod, st *podState) error {
	uid := string(pod.UID)
	if err := a.sandboxRuntime(ctx, pod); err != nil {
		return err
	}
	st.trace.step("sandboxRuntime")
	hostname, domain, _, err := network.PodHostname(pod, a.cfg.ClusterDomain)
	if err != nil {
		return err
	}
	dir := a.podDir(uid)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	npod := network.Pod{Namespace: pod.Namespace, Name: pod.Name, UID: uid, Ports: hostPorts(pod)}
	starter, async := a.network.(networkStarter)
	switch {
	case pod.Spec.HostNetwork:
		st.podIPs = ipStrings(a.cfg.NodeIPs)
	case async:
		// The ADD goes on while the sync prepares the volumes and creates
		// the first container; runc needs only the namespace to exist.
		netns, wait, err := starter.Start(ctx, npod)
		if err != nil {
			return fmt.Errorf("set up network of pod %s: %w", klog.KObj(pod), err)
		}
		st.netns, st.podIPs = netns, nil
		st.pending = &pendingNetwork{wait: wait}
		a.holdEvents(pod.UID)
		st.trace.step("netns")
	default:
		sb, err := a.network.Setup(ctx, npod)
		if err != nil {
			return fmt.Errorf("set up network of pod %s: %w", klog.KObj(pod), err)
		}
		st.netns = sb.NetNS
		st.podIPs = downward.SortIPs(sb.IPs, a.cfg.NodeIPs[0].To4() == nil)
		st.trace.step("network")
	}
	// With the ADD under way, /etc/hosts has no pod IP yet: joinNetwork
	// writes it again, in place, before any container starts.
	hosts, err := a.hostsFile(pod, st, hostname, domain)
	if err != nil {
		return err
	}
	resolv, err := a.resolvConf(pod)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"etc-hosts": hosts, "resolv.conf": resolv, "hostname": []byte(hostname + "\n")} {
		// Unsynced: a host crash ends the sandbox, and the next one
		// writes them again.
		if err := atomicfile.WriteUnsynced(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	st.trace.step("sandboxFiles")
	err = a.cfg.Runtime.RunPod(ctx, runtime.PodConfig{
		UID:       uid,
		Namespace: pod.Namespace,
		Name:      pod.Name,
		Hostname:  hostname,
		NetNS:     st.netns,
		HostIPC:   pod.Spec.HostIPC,
		HostPID:   pod.Spec.HostPID,
		QOSClass:  string(qos.GetPodQOS(pod)),
		Resources: runtime.PodResources(pod),
		Sysctls:   podSysctls(pod),
		SharePID:  pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace,
	})
	if err != nil {
		return fmt.Errorf("run sandbox of pod %s: %w", klog.KObj(pod), err)
	}
	st.resize.podCgroup = new(runtime.PodResources(pod))
	st.sandbox = true
	st.trace.step("runPod")
	return nil
}

// needsPodIPs reports whether c's environment holds the pod's IPs
// (status.podIP, status.podIPs).
func needsPodIPs(c *v1.Container) bool {
	for _, e := range c.Env {
		if f := e.ValueFrom; f != nil && f.FieldRef != nil {
			if p := f.FieldRef.FieldPath; p == "status.podIP" || p == "status.podIPs" {
				return true
			}
		}
	}
	return false
}

func hostPorts(pod *v1.Pod) []network.PortMapping {
	var out []network.PortMapping
	for _, c := range allContainers(pod) {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			out = append(out, network.PortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: strings.ToLower(string(p.Protocol)), HostIP: p.HostIP})
		}
	}
	return out
}

// setupVolumes prepares every volume of the pod; it runs on every sync so
// ConfigMap and Secret changes reach the files.
func (a *Agent) setupVolumes(ctx context.Context, pod *v1.Pod, st *podState) error {
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		src, skip, err := a.volumeSources(ctx, pod, vol, st)
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		m, err := a.cfg.Volumes.Setup(ctx, pod, vol, src)
		if err != nil {
			// Setup's errors are already kubelet's FailedMount text
			// (`MountVolume.SetUp failed for volume "x" : ...`).
			a.record(pod, v1.EventTypeWarning, "FailedMount", "%v", err)
			return fmt.Errorf("set up volume %q of pod %s: %w", vol.Name, klog.KObj(pod), err)
		}
		st.mounts[vol.Name] = m
	}
	return nil
}

// startContainer starts the next attempt of c, unless it is backing off.
// Failures are not errors of the sync: like kubelet, it records them as
// the container's waiting reason and retries after a back-off, whose
// remaining time it returns.
func (a *Agent) startContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, st *podState, last *runtime.ContainerStatus) time.Duration {
	if st.networkFailed() {
		return 0 // the sync ends with the network's error
	}
	logger := klog.FromContext(ctx)
	key := backoffKey(pod, c)
	attempt := a.attemptFromLogs(pod, c.Name)
	if last != nil {
		attempt = last.Attempt + 1
		if a.restartBackoff.IsInBackOffSince(key, last.FinishedAt) {
			d := a.restartBackoff.Get(key)
			a.record(pod, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.Name, formatPod(pod))
			st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reasonCrashLoopBackOff,
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", d, c.Name, formatPod(pod))}
			return last.FinishedAt.Add(d).Sub(a.cfg.Clock.Now()) + 10*time.Millisecond
		}
		a.restartBackoff.Next(key, last.FinishedAt)
	}

	st.trace.step("backoff")
	img, wait := a.ensureImage(ctx, pod, c, st)
	if img == nil {
		return wait
	}
	if needsPodIPs(c) {
		// The environment holds the pod's IPs.
		if a.joinNetwork(ctx, pod, st) != nil {
			return 0
		}
	}
	rootfs, err := a.cfg.Images.Rootfs(ctx, *img)
	if err != nil {
		st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reasonCreateContainerError, Message: err.Error()}
		return backOffInitial
	}
	st.trace.step("image")
	cfg, err := a.containerConfig(ctx, pod, c, st, img, rootfs, attempt)
	if err != nil {
		reason := reasonCreateConfigError
		if errors.As(err, new(runtimeError)) {
			reason = reasonCreateContainerError
		}
		a.recordContainer(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reason, Message: err.Error()}
		return backOffInitial
	}
	st.trace.step("containerConfig")
	id, err := a.cfg.Runtime.CreateContainer(st.trace.withParts(ctx, "create"), *cfg)
	if err != nil {
		// As containerd: a container that was never created leaves no log,
		// so it does not count as an attempt.
		os.Remove(cfg.LogPath)
		a.recordContainer(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reasonCreateContainerError, Message: err.Error()}
		return backOffInitial
	}
	st.trace.step("create")
	a.recordContainer(pod, c, v1.EventTypeNormal, "Created", "Container created")
	if p := st.pending; p != nil && !p.joined {
		p.created = append(p.created, createdBeforeJoin{id: id, logPath: cfg.LogPath})
	}
	if a.joinNetwork(ctx, pod, st) != nil {
		return 0
	}
	if err := a.cfg.Runtime.StartContainer(ctx, id); err != nil {
		a.recordContainer(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reasonRunContainerError, Message: err.Error()}
		return 0 // the runtime reports the attempt as exited: restarts back off
	}
	st.trace.step("start")
	a.recordContainer(pod, c, v1.EventTypeNormal, "Started", "Container started")
	st.resize.setActuated(c.Name, c.Resources)
	delete(st.waiting, c.Name)
	a.runPostStart(ctx, pod, c, id)
	st.trace.step("postStart")
	logger.V(2).Info("Started container", "pod", klog.KObj(pod), "container", c.Name, "attempt", attempt, "id", id)
	return 0
}

func backoffKey(pod *v1.Pod, c *v1.Container) string {
	return string(pod.UID) + "/" + c.Name
}

// formatPod is kubelet's format.Pod: name_namespace(uid).
func formatPod(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// ensureImage is kubelet's EnsureImageExists: the image per pull policy,
// or nil with the waiting reason set and the time to retry.
func (a *Agent) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container, st *podState) (*image.Image, time.Duration) {
	ref, err := image.Normalize(c.Image)
	if err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", c.Image, err)
		a.recordContainer(pod, c, v1.EventTypeWarning, "InspectFailed", "%s", msg)
		st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reasonInvalidImageName, Message: msg}
		return nil, backOffInitial
	}
	present, err := a.cfg.Images.Get(ctx, ref)
	havePresent := err == nil
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = v1.PullIfNotPresent
	}
	creds := &podCredentials{a: a, pod: pod}
	// kubelet's KubeletEnsureSecretPulledImages: a present image pulled
	// with credentials the pod cannot show is pulled again with the
	// pod's own; with Never, it is not present for the pod.
	usable := havePresent && a.mayUsePresent(ctx, ref, present, creds)
	if usable && policy != v1.PullAlways {
		a.recordContainer(pod, c, v1.EventTypeNormal, "Pulled", a.presentMessage(), c.Image)
		return &present, 0
	}
	if policy == v1.PullNever {
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		a.recordContainer(pod, c, v1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
		st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reasonErrImageNeverPull, Message: msg}
		return nil, backOffInitial
	}
	key := string(pod.UID) + "/" + ref
	now := a.cfg.Clock.Now()
	if a.pullBackoff.IsInBackOffSinceUpdate(key, now) {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		a.recordContainer(pod, c, v1.EventTypeNormal, "BackOff", "%s", msg)
		// As kubelet's image manager: the status carries the last pull
		// error, the event does not.
		if prev, ok := a.prevPullErr.Load(key); ok {
			msg = fmt.Sprintf("%s: %s", msg, prev)
		}
		st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reasonImagePullBackOff, Message: msg}
		return nil, a.pullBackoff.Get(key)
	}
	// A pull takes long: the pod's network is ready by now, and its
	// events go out as they happen, after the sandbox's.
	if a.joinNetwork(ctx, pod, st) != nil {
		return nil, 0
	}
	a.prevPullErr.Delete(key)
	a.recordContainer(pod, c, v1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	start := time.Now()
	img, err := a.pull(ctx, ref, creds)
	if err != nil {
		if usable && errors.Is(err, image.ErrUnreachable) {
			// Offline with the image present (e.g. imported): use it rather
			// than fail. Upstream would fail the pull; this is documented.
			a.recordContainer(pod, c, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine; registry unreachable", c.Image)
			return &present, 0
		}
		a.pullBackoff.Next(key, now)
		// kubelet's evalCRIPullErr: the status message is the runtime's
		// error alone; the event says "Failed to pull image".
		a.recordContainer(pod, c, v1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
		a.recordContainer(pod, c, v1.EventTypeWarning, "Failed", "Error: %s", reasonErrImagePull)
		a.prevPullErr.Store(key, fmt.Sprintf("%s: %s", reasonErrImagePull, err))
		st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reasonErrImagePull, Message: err.Error()}
		return nil, a.pullBackoff.Get(key)
	}
	a.recordContainer(pod, c, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %v. Image size: %v bytes.", c.Image, time.Since(start).Round(time.Millisecond), img.Size)
	return &img, 0
}

// containerConfig is kubelet's generateContainerConfig: the container's
// final environment, argv, user, mounts and resources.
func (a *Agent) containerConfig(ctx context.Context, pod *v1.Pod, c *v1.Container, st *podState, img *image.Image, rootfs string, attempt uint32) (*runtime.ContainerConfig, error) {
	target, err := a.ephemeralTarget(ctx, pod, c.Name)
	if err != nil {
		return nil, err
	}
	volumePaths := make(map[string]string, len(st.mounts))
	for name, m := range st.mounts {
		volumePaths[name] = m.Path
	}
	env, err := downward.Environment(ctx, downward.Input{
		Pod: pod, Container: c, PodIPs: st.podIPs, HostIPs: a.hostIPs(),
		Allocatable: a.allocatable(), Services: a.serviceLister, Objects: a.objects,
		VolumePaths: volumePaths,
	})
	if err != nil {
		return nil, err
	}
	// The runtime merges command and args with the image as containerd
	// does: Command replaces the entrypoint; Args replace the image's Cmd
	// unless Command is set.
	command, args := expandCommand(c.Command, env), expandCommand(c.Args, env)
	argv := command
	if len(argv) == 0 {
		argv = append([]string{}, img.Config.Entrypoint...)
		if len(args) == 0 {
			args = img.Config.Cmd
		}
	}
	argv = append(argv, args...)
	// kubelet's order: the environment, the mounts (subPath errors), the
	// runAsNonRoot check, the seccomp profile — all
	// CreateContainerConfigError — and only then
	// the runtime's own checks (no command, unknown user), which
	// containerd fails as CreateContainerError.
	mounts, err := a.containerMounts(ctx, pod, c, st, env)
	if err != nil {
		return nil, err
	}
	if err := verifyRunAsNonRoot(pod, c, img.Config.User); err != nil {
		return nil, err
	}
	// kubelet's determineEffectiveSecurityContext.
	seccomp, err := a.seccompProfile(pod, c)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, runtimeError{errors.New("no command specified")}
	}
	if err := appArmor(pod, c); err != nil {
		return nil, err
	}
	hostname, err := sandboxHostname(pod, a.cfg.ClusterDomain)
	if err != nil {
		return nil, err
	}
	envList := mergeEnv(img.Config.Env, hostname, env)
	workingDir := c.WorkingDir
	if workingDir == "" {
		workingDir = img.Config.WorkingDir
	}
	user, err := a.containerUser(pod, c, img, rootfs)
	if err != nil {
		return nil, runtimeError{err}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &v1.SecurityContext{}
	}
	cfg := &runtime.ContainerConfig{
		PodUID:                 string(pod.UID),
		Name:                   c.Name,
		Attempt:                attempt,
		Image:                  img.Name,
		Rootfs:                 rootfs,
		Args:                   argv,
		Env:                    envList,
		WorkingDir:             workingDir,
		User:                   user,
		TTY:                    c.TTY,
		Stdin:                  c.Stdin,
		StdinOnce:              c.StdinOnce,
		Mounts:                 mounts,
		Privileged:             sc.Privileged != nil && *sc.Privileged,
		ReadOnlyRootfs:         sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		NoNewPrivileges:        sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
		RunAsNonRoot:           runAsNonRoot(pod, c),
		Seccomp:                seccomp,
		Resources:              runtime.ContainerResources(c),
		OOMScoreAdj:            new(kubeletqos.GetContainerOOMScoreAdjust(pod, c, a.cfg.Machine.MemoryBytes)),
		LogPath:                a.logPath(pod, c.Name, attempt),
		TerminationMessagePath: c.TerminationMessagePath,
		TargetContainerID:      target,
		Labels: map[string]string{
			"io.kubernetes.pod.name":       pod.Name,
			"io.kubernetes.pod.namespace":  pod.Namespace,
			"io.kubernetes.pod.uid":        string(pod.UID),
			"io.kubernetes.container.name": c.Name,
			labelImageRef:                  img.Repository() + "@" + img.Digest,
		},
	}
	if caps := sc.Capabilities; caps != nil {
		for _, c := range caps.Add {
			cfg.CapAdd = append(cfg.CapAdd, string(c))
		}
		for _, c := range caps.Drop {
			cfg.CapDrop = append(cfg.CapDrop, string(c))
		}
	}
	return cfg, nil
}

// logPath is kubelet's container log layout:
// <logs>/<namespace>_<pod>_<uid>/<container>/<attempt>.log.
func (a *Agent) logPath(pod *v1.Pod, container string, attempt uint32) string {
	return filepath.Join(ContainerLogDir(a.cfg.DataDir, pod, container), strconv.Itoa(int(attempt))+".log")
}

// ContainerLogDir is the directory of the log files of a container of pod
// for an agent whose Config.DataDir is dataDir, as kubelet's
// /var/log/pods/<namespace>_<name>_<uid>/<container>.
func ContainerLogDir(dataDir string, pod *v1.Pod, container string) string {
	return filepath.Join(dataDir, "logs", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), container)
}

// attemptFromLogs is kubelet's calcRestartCountByLogDir: with no earlier
// attempt in the runtime (after the node restarted), the next attempt
// follows the newest log file, so restartCount carries on.
func (a *Agent) attemptFromLogs(pod *v1.Pod, container string) uint32 {
	entries, err := os.ReadDir(filepath.Dir(a.logPath(pod, container, 0)))
	if err != nil {
		return 0
	}
	next := uint32(0)
	for _, e := range entries {
		n, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ".log"), 10, 32)
		if err == nil && strings.HasSuffix(e.Name(), ".log") && uint32(n)+1 > next {
			next = uint32(n) + 1
		}
	}
	return next
}

// removeLogs deletes a pod's container logs once the pod is gone.
func (a *Agent) removeLogs(pod *v1.Pod) error {
	return os.RemoveAll(filepath.Dir(filepath.Dir(a.logPath(pod, "x", 0))))
}

// removeContainerLogs deletes a removed container's log and the files the
// shim rotated it to (<path>.<timestamp>), as kubelet's container log
// manager (Clean, pattern <path>*) does when its container GC removes a
// container.
func removeContainerLogs(path string) error {
	entries, err := os.ReadDir(filepath.Dir(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	base := filepath.Base(path)
	var errs []error
	for _, e := range entries {
		if n := e.Name(); n == base || strings.HasPrefix(n, base+".") {
			if err := os.Remove(filepath.Join(filepath.Dir(path), n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeOrphanedLogs deletes the log directories of pods not bound to this
// node any more (deleted while the agent was down), as kubelet's container
// GC removes the /var/log/pods directories of pods it does not know
// (evictPodLogsDirectories). The directory name ends in the pod's UID
// (<namespace>_<name>_<uid>). It runs once the pod informer has synced and
// before the workers start: no directory of a new pod appears meanwhile.
func (a *Agent) removeOrphanedLogs(ctx context.Context, pods []*v1.Pod) error {
	dir := filepath.Join(a.cfg.DataDir, "logs")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	bound := map[string]bool{}
	for _, p := range pods {
		bound[string(p.UID)] = true
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		uid := name[strings.LastIndex(name, "_")+1:]
		if bound[uid] {
			continue
		}
		klog.FromContext(ctx).V(2).Info("Removing logs of a pod no longer on this node", "podUID", uid, "dir", name)
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// defaultPathEnv is the PATH containerd (and Docker) give a container whose
// image sets none, e.g. one made by `docker import`.
const defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// mergeEnv puts the pod's variables over the image's, as containerd does,
// after the default PATH when the image has none.
func mergeEnv(imageEnv []string, hostname string, env []v1.EnvVar) []string {
	out := make([]string, 0, len(imageEnv)+len(env)+2)
	index := map[string]int{}
	set := func(k, kv string) {
		if i, ok := index[k]; ok {
			out[i] = kv
			return
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	// containerd's order: the default PATH, HOSTNAME (the sandbox's
	// hostname), the image's variables, the container's; a later one
	// replaces an earlier one in place.
	set("PATH", defaultPathEnv)
	set("HOSTNAME", "HOSTNAME="+hostname)
	for _, kv := range imageEnv {
		k, _, _ := strings.Cut(kv, "=")
		set(k, kv)
	}
	for _, e := range env {
		set(e.Name, e.Name+"="+e.Value)
	}
	return out
}

// runtimeError is a container config error that kubelet would only get
// from the runtime's CreateContainer: CreateContainerError, not
// CreateContainerConfigError.
type runtimeError struct{ error }

func (e runtimeError) Unwrap() error { return e.error }

// sandboxHostname is the hostname kubelet gives the pod sandbox, which
// containerd puts in HOSTNAME: the pod's, or for a hostNetwork pod (whose
// sandbox has none) the node's.
func sandboxHostname(pod *v1.Pod, clusterDomain string) (string, error) {
	if pod.Spec.HostNetwork {
		return os.Hostname()
	}
	hostname, _, _, err := network.PodHostname(pod, clusterDomain)
	return hostname, err
}

// verifyRunAsNonRoot is kubelet's check (pkg/kubelet/kuberuntime,
// verifyRunAsNonRoot) against the effective runAsUser, else the image's
// USER: a failure is a CreateContainerConfigError.
func verifyRunAsNonRoot(pod *v1.Pod, c *v1.Container, imageUser string) error {
	if !runAsNonRoot(pod, c) {
		return nil
	}
	var uid *int64
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid = psc.RunAsUser
	}
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		uid = c.SecurityContext.RunAsUser
	}
	if uid != nil {
		if *uid == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", formatPod(pod), c.Name)
		}
		return nil
	}
	user, _, _ := strings.Cut(imageUser, ":")
	if user == "" {
		user = "0"
	}
	if n, err := strconv.ParseInt(user, 10, 64); err == nil {
		if n == 0 {
			return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", formatPod(pod), c.Name)
		}
		return nil
	}
	return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", user, formatPod(pod), c.Name)
}

func runAsNonRoot(pod *v1.Pod, c *v1.Container) bool {
	if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
		return *c.SecurityContext.RunAsNonRoot
	}
	if psc := pod.Spec.SecurityContext; psc != nil && psc.RunAsNonRoot != nil {
		return *psc.RunAsNonRoot
	}
	return false
}

// containerUser resolves runAsUser/runAsGroup (container over pod), else
// the image's USER, plus the pod's fsGroup and supplemental groups.
func (a *Agent) containerUser(pod *v1.Pod, c *v1.Container, img *image.Image, rootfs string) (runtime.User, error) {
	var uid, gid *int64
	psc := pod.Spec.SecurityContext
	if psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	var user runtime.User
	var err error
	switch {
	case uid != nil:
		user, err = runtime.ResolveUser(rootfs, strconv.FormatInt(*uid, 10))
	default:
		user, err = runtime.ResolveUser(rootfs, img.Config.User)
	}
	if err != nil {
		return user, err
	}
	if gid != nil {
		user.GID = uint32(*gid)
	}
	if psc != nil {
		if psc.FSGroup != nil {
			user.AdditionalGIDs = append(user.AdditionalGIDs, uint32(*psc.FSGroup))
		}
		for _, g := range psc.SupplementalGroups {
			user.AdditionalGIDs = append(user.AdditionalGIDs, uint32(g))
		}
	}
	return user, nil
}

// ensureMountSource makes a mount's missing host path a directory (0755),
// as containerd's CRI does for every mount of a container it creates
// (internal/cri/opts WithMounts, "Create the host path if it doesn't
// exist"): a hostPath volume without a type names a path kubelet does not
// check, and on kubelet + containerd the container starts with an empty
// directory there rather than failing its create.
func ensureMountSource(source string) error {
	_, err := os.Stat(source)
	switch {
	case err == nil:
		return nil
	case !os.IsNotExist(err):
		return fmt.Errorf("failed to stat %q: %w", source, err)
	}
	if err := os.MkdirAll(source, 0o755); err != nil {
		return fmt.Errorf("failed to mkdir %q: %w", source, err)
	}
	return nil
}

// containerMounts is kubelet's makeMounts: the volume mounts with subPath
// and subPathExpr, then /etc/hosts, /etc/resolv.conf and /etc/hostname
// unless the container mounts them itself.
func (a *Agent) containerMounts(ctx context.Context, pod *v1.Pod, c *v1.Container, st *podState, env []v1.EnvVar) ([]runtime.Mount, error) {
	var mounts []runtime.Mount
	taken := map[string]bool{}
	for i, vm := range c.VolumeMounts {
		m, ok := st.mounts[vm.Name]
		if !ok {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", vm.Name, c.Name)
		}
		source := m.Path
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			var err error
			if sub, err = expandSubPath(vm.SubPathExpr, env); err != nil {
				return nil, err
			}
		}
		if sub != "" {
			p, err := a.subPathSource(ctx, pod, c, i, m, sub)
			if err != nil {
				return nil, err
			}
			source = p
		}
		if err := ensureMountSource(source); err != nil {
			return nil, err
		}
		mounts = append(mounts, runtime.Mount{
			Source:      source,
			Destination: vm.MountPath,
			ReadOnly:    vm.ReadOnly || m.ReadOnly,
			Propagation: propagation(vm.MountPropagation),
		})
		taken[vm.MountPath] = true
	}
	dir := a.podDir(string(pod.UID))
	for _, f := range []struct{ file, dest string }{
		{"etc-hosts", "/etc/hosts"}, {"resolv.conf", "/etc/resolv.conf"}, {"hostname", "/etc/hostname"},
	} {
		if !taken[f.dest] {
			mounts = append(mounts, runtime.Mount{Source: filepath.Join(dir, f.file), Destination: f.dest})
		}
	}
	return mounts, nil
}

func propagation(p *v1.MountPropagationMode) string {
	if p == nil {
		return "rprivate"
	}
	switch *p {
	case v1.MountPropagationHostToContainer:
		return "rslave"
	case v1.MountPropagationBidirectional:
		return "rshared"
	}
	return "rprivate"
}

// hostsFile is kubelet's managed /etc/hosts.
func (a *Agent) hostsFile(pod *v1.Pod, st *podState, hostname, domain string) ([]byte, error) {
	if pod.Spec.HostNetwork {
		host, err := os.ReadFile("/etc/hosts")
		if err != nil {
			return nil, err
		}
		return network.HostNetworkHostsFile(host, pod.Spec.HostAliases), nil
	}
	return network.HostsFile(network.HostsConfig{
		PodIPs: st.podIPs, Hostname: hostname, HostDomain: domain, HostAliases: pod.Spec.HostAliases,
	}), nil
}

// resolvConf is kubelet's pod resolv.conf for its dnsPolicy and dnsConfig.
func (a *Agent) resolvConf(pod *v1.Pod) ([]byte, error) {
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	dns, err := network.PodDNS(network.DNSConfig{
		DNSPolicy:      pod.Spec.DNSPolicy,
		PodDNSConfig:   pod.Spec.DNSConfig,
		HostNetwork:    pod.Spec.HostNetwork,
		Namespace:      pod.Namespace,
		ClusterDNS:     a.cfg.ClusterDNS,
		ClusterDomain:  a.cfg.ClusterDomain,
		HostResolvConf: host,
		NodeIPs:        a.cfg.NodeIPs,
	})
	if err != nil {
		return nil, err
	}
	for _, w := range dns.Warnings {
		a.record(pod, v1.EventTypeWarning, w.Reason, "%s", w.Message)
	}
	return dns.ResolvConf(), nil
}

func (a *Agent) hostIPs() []string {
	return downward.SortIPs(a.cfg.NodeIPs, a.cfg.NodeIPs[0].To4() == nil)
}

func (a *Agent) allocatable() v1.ResourceList {
	if a.node == nil || a.node.last == nil {
		return nil
	}
	return a.node.last.Status.Allocatable
}
