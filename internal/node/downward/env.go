package downward

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/api/v1/resource"
	podshelper "k8s.io/kubernetes/pkg/apis/core/pods"
	"k8s.io/kubernetes/pkg/fieldpath"
	"k8s.io/kubernetes/pkg/kubelet/envvars"
	envutil "k8s.io/kubernetes/pkg/kubelet/util/env"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"

	"github.com/pocketkube/pocketkube/internal/inroot"
)

// ObjectGetter reads the ConfigMaps and Secrets a pod references. The Node
// authorizer lets a node get exactly those. A missing object must be
// reported with an error for which apierrors.IsNotFound is true, so that
// optional references can be skipped.
type ObjectGetter interface {
	ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*v1.Secret, error)
}

// Input is what a container's environment is computed from. Pod, Container
// and Objects are required; a zero value elsewhere means the node does not
// know it.
type Input struct {
	Pod *v1.Pod
	// Container is one of Pod's containers or init containers.
	Container *v1.Container
	// PodIPs are the pod's IPs, at most one per family, the node's primary
	// family first (kubelet's sortPodIPs).
	PodIPs []string
	// HostIPs are the node's IPs in the same order (kubelet's
	// GetNodeHostIPs). status.hostIP and status.hostIPs fail without them.
	HostIPs []string
	// Allocatable is the node's allocatable resources, read by
	// resourceFieldRefs whose limit is unset or zero.
	Allocatable v1.ResourceList
	// Services lists every service the node can see. nil means no service
	// variables at all, as on a kubelet without an API server.
	Services corelisters.ServiceLister
	Objects  ObjectGetter
	// VolumePaths maps the pod's volume names to their directories on the
	// host, for fileKeyRef. A volume missing here cannot be referenced.
	VolumePaths map[string]string
}

// Environment returns the container's environment variables as kubelet's
// makeEnvironmentVariables computes them: envFrom in order, then env in
// order with $(VAR) references expanded against what came before and the
// service variables, then the service variables the container did not set.
// See the package doc for the order of the result. An error is what kubelet
// reports as CreateContainerConfigError, in kubelet's words.
func Environment(ctx context.Context, in Input) ([]v1.EnvVar, error) {
	pod, container := in.Pod, in.Container
	if pod.Spec.EnableServiceLinks == nil {
		return nil, fmt.Errorf("nil pod.spec.enableServiceLinks encountered, cannot construct envvars")
	}
	serviceEnv, err := serviceEnvironment(ctx, in.Services, pod.Namespace, *pod.Spec.EnableServiceLinks)
	if err != nil {
		return nil, err
	}

	var (
		// Kubelet reads each object once per container, so envFrom and a
		// keyRef to the same ConfigMap see the same version.
		configMaps = map[string]*v1.ConfigMap{}
		secrets    = map[string]*v1.Secret{}
		tmpEnv     = map[string]string{}
		order      []string
	)
	set := func(k, v string) {
		if _, ok := tmpEnv[k]; !ok {
			order = append(order, k)
		}
		tmpEnv[k] = v
	}
	configMap := func(name string) (*v1.ConfigMap, error) {
		if cm, ok := configMaps[name]; ok {
			return cm, nil
		}
		cm, err := in.Objects.ConfigMap(ctx, pod.Namespace, name)
		if err != nil {
			return nil, err
		}
		configMaps[name] = cm
		return cm, nil
	}
	secret := func(name string) (*v1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		s, err := in.Objects.Secret(ctx, pod.Namespace, name)
		if err != nil {
			return nil, err
		}
		secrets[name] = s
		return s, nil
	}

	// envFrom first, so that env overrides it. Kubelet v1.37 takes every
	// key as it is: names that are not C identifiers ("a.b", "1x") are
	// allowed since RelaxedEnvironmentVariableValidation went GA.
	for _, from := range container.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			ref := from.ConfigMapRef
			cm, err := configMap(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, err
			}
			for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
				set(from.Prefix+k, cm.Data[k])
			}
		case from.SecretRef != nil:
			ref := from.SecretRef
			s, err := secret(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, err
			}
			for _, k := range slices.Sorted(maps.Keys(s.Data)) {
				set(from.Prefix+k, string(s.Data[k]))
			}
		}
	}

	mapping := expansion.MappingFuncFor(tmpEnv, serviceEnv)
	for _, e := range container.Env {
		value := e.Value
		if value != "" {
			set(e.Name, expansion.Expand(value, mapping))
			continue
		}
		if e.ValueFrom == nil {
			set(e.Name, "")
			continue
		}
		switch from := e.ValueFrom; {
		case from.FieldRef != nil:
			if value, err = fieldValue(from.FieldRef, pod, in.PodIPs, in.HostIPs); err != nil {
				return nil, err
			}
		case from.ResourceFieldRef != nil:
			if value, err = resourceValue(from.ResourceFieldRef, pod, container, in.Allocatable); err != nil {
				return nil, err
			}
		case from.ConfigMapKeyRef != nil:
			ref := from.ConfigMapKeyRef
			optional := ref.Optional != nil && *ref.Optional
			cm, err := configMap(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, err
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %v in ConfigMap %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			value = v
		case from.SecretKeyRef != nil:
			ref := from.SecretKeyRef
			optional := ref.Optional != nil && *ref.Optional
			s, err := secret(ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, err
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %v in Secret %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			value = string(v)
		case from.FileKeyRef != nil:
			var skip bool
			if value, skip, err = fileValue(ctx, from.FileKeyRef, pod, in.VolumePaths); err != nil {
				return nil, err
			}
			if skip {
				continue
			}
		}
		set(e.Name, value)
	}

	env := make([]v1.EnvVar, 0, len(order)+len(serviceEnv))
	for _, k := range order {
		env = append(env, v1.EnvVar{Name: k, Value: tmpEnv[k]})
	}
	// The container's own value wins over a service variable of the same
	// name; kubelet skips the service one so that no name appears twice.
	for _, k := range slices.Sorted(maps.Keys(serviceEnv)) {
		if _, ok := tmpEnv[k]; !ok {
			env = append(env, v1.EnvVar{Name: k, Value: serviceEnv[k]})
		}
	}
	return env, nil
}

// serviceEnvironment is kubelet's getServiceEnvVarMap: the services of the
// pod's namespace that have a cluster IP when service links are on, and
// default/kubernetes always. A service named kubernetes in the pod's own
// namespace wins over default/kubernetes, as in kubelet.
func serviceEnvironment(ctx context.Context, lister corelisters.ServiceLister, namespace string, links bool) (map[string]string, error) {
	m := map[string]string{}
	if lister == nil {
		return m, nil
	}
	services, err := lister.List(labels.Everything())
	if err != nil {
		// Kubelet's text, which drops the cause; keep it in the log.
		klog.FromContext(ctx).Error(err, "List services for environment variables")
		return m, fmt.Errorf("failed to list services when setting up env vars")
	}
	byName := map[string]*v1.Service{}
	for _, s := range services {
		if s.Spec.ClusterIP == v1.ClusterIPNone || s.Spec.ClusterIP == "" {
			continue
		}
		if s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes" {
			if _, ok := byName[s.Name]; !ok {
				byName[s.Name] = s
			}
		} else if s.Namespace == namespace && links {
			byName[s.Name] = s
		}
	}
	list := make([]*v1.Service, 0, len(byName))
	for _, k := range slices.Sorted(maps.Keys(byName)) {
		list = append(list, byName[k])
	}
	for _, e := range envvars.FromServices(list) {
		m[e.Name] = e.Value
	}
	return m, nil
}

// fieldValue is kubelet's podFieldSelectorRuntimeValue. podIPs and hostIPs
// are already in the node's family order.
func fieldValue(fs *v1.ObjectFieldSelector, pod *v1.Pod, podIPs, hostIPs []string) (string, error) {
	path, _, err := podshelper.ConvertDownwardAPIFieldLabel(fs.APIVersion, fs.FieldPath, "")
	if err != nil {
		return "", err
	}
	switch path {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		if len(hostIPs) == 0 {
			// GetNodeHostIPs' text for a node without addresses.
			return "", fmt.Errorf("host IP unknown; known addresses: %v", []v1.NodeAddress(nil))
		}
		if path == "status.hostIP" {
			return hostIPs[0], nil
		}
		return strings.Join(hostIPs, ","), nil
	case "status.podIP":
		if len(podIPs) == 0 {
			return "", nil
		}
		return podIPs[0], nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	}
	return fieldpath.ExtractFieldPathAsString(pod, path)
}

// resourceValue is kubelet's containerResourceRuntimeValue on the pod and
// container that defaultPodLimitsForDownwardAPI returns: a cpu, memory or
// ephemeral-storage limit that is unset or zero reads as the node's
// allocatable, or as the pod-level limit when the pod sets one. Only the
// pod's regular containers are defaulted (and c itself): a containerName
// naming an init container reads that container's limits as they are.
func resourceValue(fs *v1.ResourceFieldSelector, pod *v1.Pod, c *v1.Container, allocatable v1.ResourceList) (string, error) {
	if resourcehelper.IsPodLevelLimitsSet(pod) {
		allocatable = allocatable.DeepCopy()
		for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage} {
			if !resourcehelper.IsSupportedPodLevelResource(name) {
				continue
			}
			if val, ok := pod.Spec.Resources.Limits[name]; ok && !val.IsZero() {
				if _, ok := allocatable[name]; ok {
					allocatable[name] = val.DeepCopy()
				}
			}
		}
	}
	if fs.ContainerName == "" {
		defaulted := c.DeepCopy()
		resource.MergeContainerResourceLimits(defaulted, allocatable)
		return resource.ExtractContainerResourceValue(fs, defaulted)
	}
	defaulted := pod.DeepCopy()
	for i := range defaulted.Spec.Containers {
		resource.MergeContainerResourceLimits(&defaulted.Spec.Containers[i], allocatable)
	}
	return resource.ExtractResourceValueByContainerName(fs, defaulted, fs.ContainerName)
}

// fileValue is kubelet's fileKeyRef case: the key's value in an env file
// (KEY='value' lines) inside one of the pod's volumes. skip is true when an
// optional key is absent or empty.
func fileValue(ctx context.Context, ref *v1.FileKeySelector, pod *v1.Pod, volumePaths map[string]string) (value string, skip bool, err error) {
	optional := ref.Optional != nil && *ref.Optional
	dir, ok := volumePaths[ref.VolumeName]
	if !ok {
		return "", false, fmt.Errorf("cannot find the volume %q referenced by FileKeyRef", ref.VolumeName)
	}
	path, err := securejoin.SecureJoin(dir, ref.Path)
	if err != nil {
		return "", false, err
	}
	value, err = parseEnvFile(dir, ref.Path, ref.Key)
	if err != nil {
		// Kubelet logs the parse error and reports a fixed text.
		klog.FromContext(ctx).Error(err, "Failed to parse env file", "pod", klog.KObj(pod))
		return "", false, fmt.Errorf("couldn't parse env file")
	}
	// ParseEnv returns "" for a missing key, so kubelet cannot tell it
	// from an empty value, and neither can we.
	if value == "" {
		if optional {
			return "", true, nil
		}
		return "", false, fmt.Errorf("environment variable key %q not found in file %q", ref.Key, path)
	}
	return value, false, nil
}

// maxEnvFile bounds what is read of a fileKeyRef's env file.
const maxEnvFile = 16 << 20

// parseEnvFile is kubelet's envutil.ParseEnv of the file name in the
// volume dir, read so that the pod, which writes the volume, cannot make
// the node read elsewhere or hang: name resolves inside dir even when a
// container swaps a symlink in after SecureJoin looked (kubelet opens the
// joined path again), a FIFO or anything but a regular file is refused
// instead of blocking, and at most maxEnvFile bytes are read. ParseEnv
// itself reads the bytes read once, from a memfd, so its parsing (and
// messages) stay upstream's.
func parseEnvFile(dir, name, key string) (string, error) {
	data, err := inroot.ReadFile(dir, name, maxEnvFile)
	if err != nil {
		return "", err
	}
	fd, err := unix.MemfdCreate("env-file", unix.MFD_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("read env file %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "env-file")
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("read env file %s: %w", name, err)
	}
	return envutil.ParseEnv(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), key)
}
