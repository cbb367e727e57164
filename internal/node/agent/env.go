package agent

import (
	"context"
	"fmt"
	"net"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	podresource "k8s.io/kubernetes/pkg/api/v1/resource"
	"k8s.io/kubernetes/pkg/fieldpath"
	"k8s.io/kubernetes/pkg/kubelet/envvars"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

// envInput is what a container's environment is computed from.
type envInput struct {
	pod         *v1.Pod
	container   *v1.Container
	podIPs      []string // primary family first
	hostIPs     []string
	allocatable v1.ResourceList
	services    corelisters.ServiceLister // nil: no service variables
	objects     objectGetter
}

// objectGetter reads the ConfigMaps and Secrets a pod references; the Node
// authorizer lets a node get exactly those.
type objectGetter interface {
	ConfigMap(namespace, name string) (*v1.ConfigMap, error)
	Secret(namespace, name string) (*v1.Secret, error)
}

// makeEnvironment is kubelet's makeEnvironmentVariables
// (pkg/kubelet/kubelet_pods.go): envFrom, then env in order with $(VAR)
// expansion against what came before and the service variables, then the
// service variables not already set. Errors are what kubelet reports as
// CreateContainerConfigError.
func makeEnvironment(ctx context.Context, in envInput) ([]v1.EnvVar, error) {
	pod, c := in.pod, in.container
	if pod.Spec.EnableServiceLinks == nil {
		return nil, fmt.Errorf("nil pod.spec.enableServiceLinks encountered, cannot construct envvars")
	}
	serviceEnv, err := serviceEnvironment(in.services, pod.Namespace, *pod.Spec.EnableServiceLinks)
	if err != nil {
		return nil, err
	}
	tmpEnv := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := tmpEnv[k]; !ok {
			order = append(order, k)
		}
		tmpEnv[k] = v
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := in.objects.ConfigMap(pod.Namespace, from.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
					continue
				}
				return nil, err
			}
			for k, v := range cm.Data {
				set(from.Prefix+k, v)
			}
		case from.SecretRef != nil:
			s, err := in.objects.Secret(pod.Namespace, from.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && from.SecretRef.Optional != nil && *from.SecretRef.Optional {
					continue
				}
				return nil, err
			}
			for k, v := range s.Data {
				set(from.Prefix+k, string(v))
			}
		}
	}
	mapping := expansion.MappingFuncFor(tmpEnv, serviceEnv)
	for _, e := range c.Env {
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
			value, err = podFieldValue(from.FieldRef, pod, in.podIPs, in.hostIPs)
		case from.ResourceFieldRef != nil:
			value, err = containerResourceValue(from.ResourceFieldRef, pod, c, in.allocatable)
		case from.ConfigMapKeyRef != nil:
			ref := from.ConfigMapKeyRef
			optional := ref.Optional != nil && *ref.Optional
			cm, gerr := in.objects.ConfigMap(pod.Namespace, ref.Name)
			if gerr != nil {
				if apierrors.IsNotFound(gerr) && optional {
					continue
				}
				return nil, gerr
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
			s, gerr := in.objects.Secret(pod.Namespace, ref.Name)
			if gerr != nil {
				if apierrors.IsNotFound(gerr) && optional {
					continue
				}
				return nil, gerr
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %v in Secret %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			value = string(v)
		}
		if err != nil {
			return nil, err
		}
		set(e.Name, value)
	}
	env := make([]v1.EnvVar, 0, len(order)+len(serviceEnv))
	for _, k := range order {
		env = append(env, v1.EnvVar{Name: k, Value: tmpEnv[k]})
	}
	// Service variables last, sorted for a stable environment, and only
	// where the pod did not set the name itself.
	for _, k := range sortedKeys(serviceEnv) {
		if _, ok := tmpEnv[k]; !ok {
			env = append(env, v1.EnvVar{Name: k, Value: serviceEnv[k]})
		}
	}
	return env, nil
}

// serviceEnvironment is kubelet's getServiceEnvVarMap: the pod's
// namespace's services with a cluster IP when service links are on, and
// default/kubernetes always.
func serviceEnvironment(lister corelisters.ServiceLister, namespace string, links bool) (map[string]string, error) {
	if lister == nil {
		return map[string]string{}, nil
	}
	services, err := lister.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	byName := map[string]*v1.Service{}
	for _, s := range services {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone {
			continue
		}
		if s.Namespace == namespace && links {
			byName[s.Name] = s
		} else if s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes" {
			if _, ok := byName[s.Name]; !ok {
				byName[s.Name] = s
			}
		}
	}
	list := make([]*v1.Service, 0, len(byName))
	for _, s := range byName {
		list = append(list, s)
	}
	m := map[string]string{}
	for _, e := range envvars.FromServices(list) {
		m[e.Name] = e.Value
	}
	return m, nil
}

// podFieldValue is kubelet's podFieldSelectorRuntimeValue.
func podFieldValue(fs *v1.ObjectFieldSelector, pod *v1.Pod, podIPs, hostIPs []string) (string, error) {
	path := fs.FieldPath
	if path == "spec.host" {
		path = "spec.nodeName"
	}
	switch path {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		if len(hostIPs) == 0 {
			return "", nil
		}
		return hostIPs[0], nil
	case "status.hostIPs":
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

// containerResourceValue is kubelet's containerResourceRuntimeValue after
// defaultPodLimitsForDownwardAPI: unset cpu, memory and ephemeral-storage
// limits read as the node's allocatable.
func containerResourceValue(fs *v1.ResourceFieldSelector, pod *v1.Pod, c *v1.Container, allocatable v1.ResourceList) (string, error) {
	defaulted := pod.DeepCopy()
	for i := range defaulted.Spec.Containers {
		podresource.MergeContainerResourceLimits(&defaulted.Spec.Containers[i], allocatable)
	}
	if fs.ContainerName == "" {
		cc := c.DeepCopy()
		podresource.MergeContainerResourceLimits(cc, allocatable)
		return podresource.ExtractContainerResourceValue(fs, cc)
	}
	return podresource.ExtractResourceValueByContainerName(fs, defaulted, fs.ContainerName)
}

// sortPodIPs keeps at most one IP per family, the node's family first
// (kubelet's sortPodIPs).
func sortPodIPs(ips []net.IP, hostIPv6 bool) []string {
	var v4, v6 string
	for _, ip := range ips {
		if ip.To4() != nil {
			if v4 == "" {
				v4 = ip.String()
			}
		} else if v6 == "" {
			v6 = ip.String()
		}
	}
	var out []string
	first, second := v4, v6
	if hostIPv6 {
		first, second = v6, v4
	}
	for _, s := range []string{first, second} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func expandCommand(cmd []string, env []v1.EnvVar) []string {
	if len(cmd) == 0 {
		return nil
	}
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Name] = e.Value
	}
	mapping := expansion.MappingFuncFor(m)
	out := make([]string, len(cmd))
	for i, s := range cmd {
		out[i] = expansion.Expand(s, mapping)
	}
	return out
}
