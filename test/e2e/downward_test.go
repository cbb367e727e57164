//go:build e2e

package e2e

// Ports of upstream's Downward API and variable-expansion e2e tests
// (k8s.io/kubernetes@v1.37.2 test/e2e/common/node/downwardapi.go,
// common/node/expansion.go, common/storage/downwardapi_volume.go and
// common/storage/projected_downwardapi.go), plus sections 1 and 2 of
// shared/WALKTHROUGH.md. Pod specs and expected outputs are upstream's; only
// the image differs: upstream's agnhost `mounttest` is replaced by busybox
// commands that print the same lines (see mounttestFileContent and friends).

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Upstream's e2enetwork.RegexIPv4 and RegexIPv6
// (test/e2e/framework/network/utils.go).
const (
	regexIPv4 = "(?:\\d+)\\.(?:\\d+)\\.(?:\\d+)\\.(?:\\d+)"
	regexIPv6 = "(?:(?:(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):){6})(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):(?:(?:[0-9a-fA-F]{1,4})))|(?:(?:(?:(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9]))\\.){3}(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9])))))))|(?:(?:::(?:(?:(?:[0-9a-fA-F]{1,4})):){5})(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):(?:(?:[0-9a-fA-F]{1,4})))|(?:(?:(?:(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9]))\\.){3}(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9])))))))|(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})))?::(?:(?:(?:[0-9a-fA-F]{1,4})):){4})(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):(?:(?:[0-9a-fA-F]{1,4})))|(?:(?:(?:(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9]))\\.){3}(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9])))))))|(?:(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):){0,1}(?:(?:[0-9a-fA-F]{1,4})))?::(?:(?:(?:[0-9a-fA-F]{1,4})):){3})(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):(?:(?:[0-9a-fA-F]{1,4})))|(?:(?:(?:(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9]))\\.){3}(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9])))))))|(?:(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):){0,2}(?:(?:[0-9a-fA-F]{1,4})))?::(?:(?:(?:[0-9a-fA-F]{1,4})):){2})(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):(?:(?:[0-9a-fA-F]{1,4})))|(?:(?:(?:(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9]))\\.){3}(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9])))))))|(?:(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):){0,3}(?:(?:[0-9a-fA-F]{1,4})))?::(?:(?:[0-9a-fA-F]{1,4})):)(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):(?:(?:[0-9a-fA-F]{1,4})))|(?:(?:(?:(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9]))\\.){3}(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9])))))))|(?:(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):){0,4}(?:(?:[0-9a-fA-F]{1,4})))?::)(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):(?:(?:[0-9a-fA-F]{1,4})))|(?:(?:(?:(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9]))\\.){3}(?:(?:25[0-5]|(?:[1-9]|1[0-9]|2[0-4])?[0-9])))))))|(?:(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):){0,5}(?:(?:[0-9a-fA-F]{1,4})))?::)(?:(?:[0-9a-fA-F]{1,4})))|(?:(?:(?:(?:(?:(?:[0-9a-fA-F]{1,4})):){0,6}(?:(?:[0-9a-fA-F]{1,4})))?::))))"
)

const (
	// outputPodTimeout bounds how long a test pod may take to run to
	// completion (upstream: f.Timeouts.PodStart, 5 min).
	outputPodTimeout = 2 * time.Minute
	// volumeUpdateTimeout bounds how long a label or annotation change may
	// take to reach a downwardAPI file (upstream: podLogTimeout, 2-3 min).
	volumeUpdateTimeout = 2 * time.Minute
	// e2eBusybox stands in for upstream's
	// registry.k8s.io/e2e-test-images/busybox and agnhost images.
	e2eBusybox = "busybox"
)

// nonRootTestUserID is upstream's test/e2e/common/storage/util.go value.
var nonRootTestUserID = int64(1000)

// testNamespace creates a namespace named prefix-<random>, as upstream's
// framework.NewDefaultFramework does, waits for its default service account
// and deletes it when the test ends.
func testNamespace(t *testing.T, c kubernetes.Interface, prefix string) string {
	t.Helper()
	shared.ImportBusybox(t, e2eBusybox)
	return framework.NewNamespace(t, c, prefix+"-")
}

// uniqueName is upstream's prefix + uuid, shortened: pod names must stay
// valid hostnames (63 characters).
func uniqueName(prefix string) string { return prefix + rand.String(10) }

// outputMatcher reports whether logs match expected: gomega's
// ContainSubstring or MatchRegexp, the two matchers upstream's
// TestContainerOutput and TestContainerOutputRegexp use.
type outputMatcher struct {
	name  string
	match func(logs, expected string) (bool, error)
}

var (
	containSubstring = outputMatcher{"to contain substring", func(logs, expected string) (bool, error) {
		return strings.Contains(logs, expected), nil
	}}
	matchRegexp = outputMatcher{"to match regular expression", func(logs, expected string) (bool, error) {
		re, err := regexp.Compile(expected)
		if err != nil {
			return false, err
		}
		return re.MatchString(logs), nil
	}}
)

// expectOutput is upstream's e2epodoutput.TestContainerOutput: it creates
// pod (restartPolicy Never), waits for it to succeed, reads containerName's
// log and checks that it contains every expected string.
func expectOutput(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, containerName string, expected []string) {
	t.Helper()
	matchContainerOutput(t, c, pod, containerName, expected, containSubstring)
}

// expectOutputRegexp is upstream's e2epodoutput.TestContainerOutputRegexp:
// every expected string is a regular expression that must match somewhere
// in the log.
func expectOutputRegexp(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, containerName string, expected []string) {
	t.Helper()
	matchContainerOutput(t, c, pod, containerName, expected, matchRegexp)
}

// matchContainerOutput is upstream's MatchMultipleContainerOutputs for one
// container. It returns the log.
func matchContainerOutput(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, containerName string, expected []string, m outputMatcher) string {
	t.Helper()
	framework.CreatePod(t, c, pod)
	// WaitForPodSuccessInNamespaceTimeout: Succeeded ends the wait, and so
	// does Failed, as an error.
	got, err := framework.WaitPodIn(t.Context(), c, pod.Namespace, pod.Name, outputPodTimeout, func(p *corev1.Pod) (bool, error) {
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			return true, nil
		case corev1.PodFailed:
			return true, fmt.Errorf("pod %q failed with status: %s", p.Name, framework.PodStatus(p))
		}
		return false, nil
	})
	if err != nil {
		var b strings.Builder
		for _, ctr := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
			logs, lerr := framework.PodLogs(t.Context(), c, pod.Namespace, pod.Name, ctr.Name)
			fmt.Fprintf(&b, "\ncontainer %s output (%v): %q", ctr.Name, lerr, logs)
		}
		t.Fatalf("expected pod %q success: %v%s", pod.Name, err, b.String())
	}
	logs, err := framework.PodLogs(t.Context(), c, pod.Namespace, got.Name, containerName)
	if err != nil {
		t.Fatalf("get logs from %s for %s: %v", got.Name, containerName, err)
	}
	for _, e := range expected {
		ok, err := m.match(logs, e)
		if err != nil {
			t.Errorf("expected %q in container output: %v", e, err)
		} else if !ok {
			t.Errorf("expected %q in container output: Expected\n    <string>: %q\n%s\n    <string>: %q", e, logs, m.name, e)
		}
	}
	return logs
}

// The agnhost mounttest flags upstream's volume tests use, as busybox
// commands printing exactly mounttest's lines (its Printf formats, with %q
// paths, which for these plain paths is the path in double quotes).

// mounttestFileContent is `mounttest --file_content=path`.
func mounttestFileContent(path string) []string {
	return []string{"sh", "-c", `printf 'content of file "%s": ' "$0"; cat "$0" || exit 1; echo`, path}
}

// mounttestFileMode is `mounttest --file_mode=path` (os.Stat follows
// symlinks, as stat -L does; os.FileMode's String is ls's mode column).
func mounttestFileMode(path string) []string {
	return []string{"sh", "-c", `m=$(stat -L -c %A "$0") || exit 1; printf 'mode of file "%s": %s\n' "$0" "$m"`, path}
}

// mounttestFileOwner is `mounttest --file_owner=path`.
func mounttestFileOwner(path string) []string {
	return []string{"sh", "-c", `o=$(stat -L -c '%u %g' "$0") || exit 1; set -- "$0" $o; printf 'owner UID of "%s": %s\nowner GID of "%s": %s\n' "$1" "$2" "$1" "$3"`, path}
}

// mounttestFileContentInLoop is `mounttest
// --break_on_expected_content=false --retry_time=SECONDS
// --file_content_in_loop=path`: it prints the file every 2 s.
func mounttestFileContentInLoop(path string, seconds int) []string {
	return []string{"sh", "-c", `end=$(( $(date +%s) + $1 )); while [ "$(date +%s)" -lt "$end" ]; do if c=$(cat "$0" && echo x); then printf 'content of file "%s": %s\n' "$0" "${c%x}"; else echo "Error reading file $0, retrying"; fi; sleep 2; done`, path, strconv.Itoa(seconds)}
}

// dapiPod is the pod of upstream's Downward API and expansion tests:
// podName, labelled name=podName, in ns, never restarted, with one
// container, dapi-container, that runs command in e2eBusybox with env.
func dapiPod(ns, podName string, command []string, env []corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: ns, Labels: map[string]string{"name": podName}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:            "dapi-container",
				Image:           e2eBusybox,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         command,
				Env:             env,
			}},
			RestartPolicy: corev1.RestartPolicyNever,
		},
	}
}

func TestDownwardAPIEnv(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	ns := testNamespace(t, c, "downward-api")

	// testDownwardAPI is upstream's pod for most of these tests.
	testDownwardAPI := func(podName string, env []corev1.EnvVar) *corev1.Pod {
		p := dapiPod(ns, podName, []string{"sh", "-c", "env"}, env)
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("250m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("1250m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
		}
		return p
	}
	// envPod is the pod of the tests that build their own: no resources.
	envPod := func(podName string, env []corev1.EnvVar, command string) *corev1.Pod {
		p := testDownwardAPI(podName, env)
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
		p.Spec.Containers[0].Command = []string{"sh", "-c", command}
		return p
	}
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	resourceEnv := func(name, res string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: res}}}
	}
	ipEither := fmt.Sprintf("%v|%v", regexIPv4, regexIPv6)

	t.Run("should provide pod name, namespace and IP address as env vars", func(t *testing.T) {
		podName := uniqueName("downward-api-")
		pod := testDownwardAPI(podName, []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("POD_IP", "status.podIP"),
		})
		expectOutputRegexp(t, c, pod, "dapi-container", []string{
			fmt.Sprintf("POD_NAME=%v", podName),
			fmt.Sprintf("POD_NAMESPACE=%v", ns),
			fmt.Sprintf("POD_IP=%v", ipEither),
		})
	})

	t.Run("should provide host IP as an env var", func(t *testing.T) {
		pod := testDownwardAPI(uniqueName("downward-api-"), []corev1.EnvVar{fieldEnv("HOST_IP", "status.hostIP")})
		expectOutputRegexp(t, c, pod, "dapi-container", []string{fmt.Sprintf("HOST_IP=%v", ipEither)})
	})

	// Upstream's "hostIPs" test reads status.hostIP again; status.hostIPs
	// and status.podIPs are checked against the pod's status below.
	t.Run("should provide hostIPs as an env var", func(t *testing.T) {
		pod := testDownwardAPI(uniqueName("downward-api-"), []corev1.EnvVar{fieldEnv("HOST_IP", "status.hostIP")})
		expectOutputRegexp(t, c, pod, "dapi-container", []string{fmt.Sprintf("HOST_IP=%v", ipEither)})
	})

	t.Run("status.hostIPs and status.podIPs equal the pod's status", func(t *testing.T) {
		podName := uniqueName("downward-api-")
		pod := testDownwardAPI(podName, []corev1.EnvVar{
			fieldEnv("HOST_IPS", "status.hostIPs"),
			fieldEnv("POD_IPS", "status.podIPs"),
		})
		logs := matchContainerOutput(t, c, pod, "dapi-container", nil, containSubstring)
		got, err := c.CoreV1().Pods(ns).Get(t.Context(), podName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var hostIPs, podIPs []string
		for _, ip := range got.Status.HostIPs {
			hostIPs = append(hostIPs, ip.IP)
		}
		for _, ip := range got.Status.PodIPs {
			podIPs = append(podIPs, ip.IP)
		}
		for _, want := range []string{"HOST_IPS=" + strings.Join(hostIPs, ",") + "\n", "POD_IPS=" + strings.Join(podIPs, ",") + "\n"} {
			if len(hostIPs) == 0 || len(podIPs) == 0 || !strings.Contains(logs, want) {
				t.Errorf("want %q in env (status hostIPs %v podIPs %v):\n%s", want, hostIPs, podIPs, logs)
			}
		}
	})

	t.Run("should provide host IP and pod IP as an env var if pod uses host network [LinuxOnly]", func(t *testing.T) {
		pod := envPod(uniqueName("downward-api-"), []corev1.EnvVar{
			fieldEnv("HOST_IP", "status.hostIP"),
			fieldEnv("POD_IP", "status.podIP"),
		}, `[[ "${HOST_IP:?}" == "${POD_IP:?}" ]] && echo 'OK' || echo "HOST_IP: '${HOST_IP}' != POD_IP: '${POD_IP}'"`)
		pod.Spec.HostNetwork = true
		expectOutputRegexp(t, c, pod, "dapi-container", []string{"OK"})
	})

	t.Run("should provide container's limits.cpu/memory and requests.cpu/memory as env vars", func(t *testing.T) {
		pod := testDownwardAPI(uniqueName("downward-api-"), []corev1.EnvVar{
			resourceEnv("CPU_LIMIT", "limits.cpu"),
			resourceEnv("MEMORY_LIMIT", "limits.memory"),
			resourceEnv("CPU_REQUEST", "requests.cpu"),
			resourceEnv("MEMORY_REQUEST", "requests.memory"),
		})
		expectOutputRegexp(t, c, pod, "dapi-container", []string{
			"CPU_LIMIT=2",
			"MEMORY_LIMIT=67108864",
			"CPU_REQUEST=1",
			"MEMORY_REQUEST=33554432",
		})
	})

	t.Run("should provide default limits.cpu/memory from node allocatable", func(t *testing.T) {
		pod := envPod(uniqueName("downward-api-"), []corev1.EnvVar{
			resourceEnv("CPU_LIMIT", "limits.cpu"),
			resourceEnv("MEMORY_LIMIT", "limits.memory"),
		}, "env")
		logs := matchContainerOutput(t, c, pod, "dapi-container", []string{"CPU_LIMIT=[1-9]", "MEMORY_LIMIT=[1-9]"}, matchRegexp)
		// Beyond upstream: the values are the node's allocatable, exactly.
		node := nodeOf(t, c, ns, pod.Name)
		cpu := node.Status.Allocatable.Cpu()
		cores := (cpu.MilliValue() + 999) / 1000 // kubelet's convertResourceCPUToString with divisor 1
		for _, want := range []string{
			fmt.Sprintf("CPU_LIMIT=%d\n", cores),
			fmt.Sprintf("MEMORY_LIMIT=%d\n", node.Status.Allocatable.Memory().Value()),
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("want %q (node allocatable %v) in env:\n%s", want, node.Status.Allocatable, logs)
			}
		}
	})

	t.Run("should provide pod UID as env vars", func(t *testing.T) {
		pod := testDownwardAPI(uniqueName("downward-api-"), []corev1.EnvVar{fieldEnv("POD_UID", "metadata.uid")})
		logs := matchContainerOutput(t, c, pod, "dapi-container", []string{
			"POD_UID=[a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12}",
		}, matchRegexp)
		got, err := c.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := "POD_UID=" + string(got.UID) + "\n"; !strings.Contains(logs, want) {
			t.Errorf("want %q in env:\n%s", want, logs)
		}
	})

	// Upstream runs the hugepages tests [Serial] [Disruptive] because its
	// suite may reserve hugepages; both ask for none, so they need no
	// hugepages on the node.
	t.Run("should provide container's limits.hugepages-<pagesize> and requests.hugepages-<pagesize> as env vars", func(t *testing.T) {
		pod := envPod(uniqueName("downward-api-"), []corev1.EnvVar{
			resourceEnv("HUGEPAGES_LIMIT", "limits.hugepages-2Mi"),
			resourceEnv("HUGEPAGES_REQUEST", "requests.hugepages-2Mi"),
		}, "env")
		pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{"cpu": resource.MustParse("10m"), "hugepages-2Mi": resource.MustParse("0Mi")},
			Limits:   corev1.ResourceList{"hugepages-2Mi": resource.MustParse("0Mi")},
		}
		expectOutputRegexp(t, c, pod, "dapi-container", []string{"HUGEPAGES_LIMIT=0", "HUGEPAGES_REQUEST=0"})
	})

	t.Run("should provide default limits.hugepages-<pagesize> from node allocatable", func(t *testing.T) {
		pod := envPod(uniqueName("downward-api-"), []corev1.EnvVar{resourceEnv("HUGEPAGES_LIMIT", "limits.hugepages-2Mi")}, "env")
		expectOutputRegexp(t, c, pod, "dapi-container", []string{"HUGEPAGES_LIMIT=((0)|([1-9][0-9]*))\n"})
	})

	// PodLevelResources is beta and on by default in v1.37: kubelet's
	// defaultPodLimitsForDownwardAPI falls back to the pod's limits before
	// the node's allocatable.
	podLevel := func(limits corev1.ResourceList) *corev1.Pod {
		pod := envPod(uniqueName("downward-api-"), []corev1.EnvVar{
			resourceEnv("CPU_LIMIT", "limits.cpu"),
			resourceEnv("MEMORY_LIMIT", "limits.memory"),
		}, "env")
		pod.Spec.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   limits,
		}
		return pod
	}
	t.Run("should provide default limits.cpu/memory from pod level resources", func(t *testing.T) {
		pod := podLevel(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1250m"), corev1.ResourceMemory: resource.MustParse("64Mi")})
		expectOutputRegexp(t, c, pod, "dapi-container", []string{"CPU_LIMIT=2", "MEMORY_LIMIT=67108864"})
	})

	t.Run("should provide default limits.cpu/memory from pod level resources or node allocatable", func(t *testing.T) {
		pod := podLevel(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1250m")})
		logs := matchContainerOutput(t, c, pod, "dapi-container", nil, matchRegexp)
		node := nodeOf(t, c, ns, pod.Name)
		for _, expected := range []string{"CPU_LIMIT=2", fmt.Sprintf("MEMORY_LIMIT=%d", node.Status.Allocatable.Memory().Value())} {
			if ok, _ := regexp.MatchString(expected, logs); !ok {
				t.Errorf("expected %q in container output: %s", expected, logs)
			}
		}
	})
}

// nodeOf returns the node pod ns/name ran on.
func nodeOf(t *testing.T, c kubernetes.Interface, ns, name string) *corev1.Node {
	t.Helper()
	pod, err := c.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node, err := c.CoreV1().Nodes().Get(t.Context(), pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// downwardItems are the items of upstream's downwardAPIVolumeBasePod and
// projectedDownwardAPIVolumeBasePod.
func downwardItems() []corev1.DownwardAPIVolumeFile {
	res := func(path, r string) corev1.DownwardAPIVolumeFile {
		return corev1.DownwardAPIVolumeFile{Path: path, ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "client-container", Resource: r}}
	}
	return []corev1.DownwardAPIVolumeFile{
		{Path: "podname", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}},
		res("cpu_limit", "limits.cpu"),
		res("cpu_request", "requests.cpu"),
		res("memory_limit", "limits.memory"),
		res("memory_request", "requests.memory"),
	}
}

// downwardVolumeKind builds upstream's pods for either volume type:
// downwardAPI (downwardapi_volume.go) or projected (projected_downwardapi.go).
type downwardVolumeKind struct {
	projected bool
}

func (k downwardVolumeKind) basePod(ns, name string, labels, annotations map[string]string) *corev1.Pod {
	vol := corev1.Volume{Name: "podinfo"}
	if k.projected {
		vol.Projected = &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
			DownwardAPI: &corev1.DownwardAPIProjection{Items: downwardItems()},
		}}}
	} else {
		vol.DownwardAPI = &corev1.DownwardAPIVolumeSource{Items: downwardItems()}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			Volumes:       []corev1.Volume{vol},
			RestartPolicy: corev1.RestartPolicyNever,
		},
	}
}

func (k downwardVolumeKind) items(pod *corev1.Pod) *[]corev1.DownwardAPIVolumeFile {
	if k.projected {
		return &pod.Spec.Volumes[0].Projected.Sources[0].DownwardAPI.Items
	}
	return &pod.Spec.Volumes[0].DownwardAPI.Items
}

func (k downwardVolumeKind) setDefaultMode(pod *corev1.Pod, mode *int32) {
	if k.projected {
		pod.Spec.Volumes[0].Projected.DefaultMode = mode
	} else {
		pod.Spec.Volumes[0].DownwardAPI.DefaultMode = mode
	}
}

func (k downwardVolumeKind) setDefaultUser(pod *corev1.Pod, user *int64) {
	if k.projected {
		pod.Spec.Volumes[0].Projected.DefaultUser = user
	} else {
		pod.Spec.Volumes[0].DownwardAPI.DefaultUser = user
	}
}

func clientContainer(command []string, res corev1.ResourceRequirements) corev1.Container {
	return corev1.Container{
		Name:            "client-container",
		Image:           e2eBusybox,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         command,
		Resources:       res,
		VolumeMounts:    []corev1.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo"}},
	}
}

// simplePod is downwardAPIVolumePodForSimpleTest.
func (k downwardVolumeKind) simplePod(ns, name, filePath string) *corev1.Pod {
	pod := k.basePod(ns, name, nil, nil)
	pod.Spec.Containers = []corev1.Container{clientContainer(mounttestFileContent(filePath), corev1.ResourceRequirements{})}
	return pod
}

// modePod is downwardAPIVolumePodForModeTest.
func (k downwardVolumeKind) modePod(ns, name, filePath string, itemMode, defaultMode *int32) *corev1.Pod {
	pod := k.basePod(ns, name, nil, nil)
	pod.Spec.Containers = []corev1.Container{clientContainer(mounttestFileMode(filePath), corev1.ResourceRequirements{})}
	if itemMode != nil {
		(*k.items(pod))[0].Mode = itemMode
	}
	if defaultMode != nil {
		k.setDefaultMode(pod, defaultMode)
	}
	return pod
}

// userPod is downwardAPIVolumePodForUserTest.
func (k downwardVolumeKind) userPod(ns, name, filePath string, itemUser, defaultUser, runAsUser *int64) *corev1.Pod {
	pod := k.basePod(ns, name, nil, nil)
	pod.Spec.Containers = []corev1.Container{clientContainer(mounttestFileOwner(filePath), corev1.ResourceRequirements{})}
	if runAsUser != nil {
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: runAsUser}
	}
	if itemUser != nil {
		(*k.items(pod))[0].User = itemUser
	}
	if defaultUser != nil {
		k.setDefaultUser(pod, defaultUser)
	}
	return pod
}

// resourcesPod is downwardAPIVolumeForContainerResources.
func (k downwardVolumeKind) resourcesPod(ns, name, filePath string) *corev1.Pod {
	pod := k.basePod(ns, name, nil, nil)
	pod.Spec.Containers = []corev1.Container{clientContainer(mounttestFileContent(filePath), corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1250m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
	})}
	return pod
}

// defaultResourcesPod is downwardAPIVolumeForDefaultContainerResources.
func (k downwardVolumeKind) defaultResourcesPod(ns, name, filePath string) *corev1.Pod {
	pod := k.basePod(ns, name, nil, nil)
	pod.Spec.Containers = []corev1.Container{clientContainer(mounttestFileContent(filePath), corev1.ResourceRequirements{})}
	return pod
}

// updatePod is downwardAPIVolumePodForUpdateTest.
func (k downwardVolumeKind) updatePod(ns, name string, labels, annotations map[string]string, filePath string, retrySeconds int) *corev1.Pod {
	pod := k.basePod(ns, name, labels, annotations)
	pod.Spec.Containers = []corev1.Container{clientContainer(mounttestFileContentInLoop(filePath, retrySeconds), corev1.ResourceRequirements{})}
	items := k.items(pod)
	if len(labels) > 0 {
		*items = append(*items, corev1.DownwardAPIVolumeFile{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels"}})
	}
	if len(annotations) > 0 {
		*items = append(*items, corev1.DownwardAPIVolumeFile{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations"}})
	}
	return pod
}

// setPodNonRootUser is upstream's (test/e2e/common/storage/util.go) for Linux.
func setPodNonRootUser(pod *corev1.Pod) { pod.Spec.SecurityContext.RunAsUser = &nonRootTestUserID }

func TestDownwardAPIVolume(t *testing.T) {
	t.Parallel()
	testDownwardVolume(t, downwardVolumeKind{projected: false}, "downward-api", 120)
}

// TestProjectedDownwardAPI ports projected_downwardapi.go. Upstream's
// "podname only", "fsgroup" and container-resources Its there build their
// pods with the plain downwardAPI helpers (a copy-paste it never fixed);
// here every pod uses a projected volume, so projected volumes are what the
// test exercises.
func TestProjectedDownwardAPI(t *testing.T) {
	t.Parallel()
	testDownwardVolume(t, downwardVolumeKind{projected: true}, "projected", 1200)
}

func testDownwardVolume(t *testing.T, k downwardVolumeKind, nsPrefix string, loopSeconds int) {
	c := shared.Client(t)
	ns := testNamespace(t, c, nsPrefix)
	const container = "client-container"

	t.Run("should provide podname only", func(t *testing.T) {
		podName := uniqueName("downwardapi-volume-")
		expectOutput(t, c, k.simplePod(ns, podName, "/etc/podinfo/podname"), container, []string{podName + "\n"})
	})

	t.Run("should set DefaultMode on files [LinuxOnly]", func(t *testing.T) {
		defaultMode := int32(0400)
		pod := k.modePod(ns, uniqueName("downwardapi-volume-"), "/etc/podinfo/podname", nil, &defaultMode)
		expectOutput(t, c, pod, container, []string{"mode of file \"/etc/podinfo/podname\": -r--------"})
	})

	t.Run("should set mode on item file [LinuxOnly]", func(t *testing.T) {
		mode := int32(0400)
		pod := k.modePod(ns, uniqueName("downwardapi-volume-"), "/etc/podinfo/podname", &mode, nil)
		expectOutput(t, c, pod, container, []string{"mode of file \"/etc/podinfo/podname\": -r--------"})
	})

	// Upstream runs the DefaultUser / item user Its only with the alpha
	// gate AtomicWriteVolumeUserFields on. On a default v1.37 cluster the
	// gate is off, so the API server drops the fields (dropDisabledFields)
	// and the file keeps kubelet's owner, root, while the pod runs as 1000.
	userGateOff := func(t *testing.T, pod *corev1.Pod) {
		t.Helper()
		matchContainerOutput(t, c, pod, container, []string{
			"owner UID of \"/etc/podinfo/podname\": 0\n",
			"owner GID of \"/etc/podinfo/podname\": 0\n",
		}, containSubstring)
		stored, err := c.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v := stored.Spec.Volumes[0]; (v.DownwardAPI != nil && (v.DownwardAPI.DefaultUser != nil || v.DownwardAPI.Items[0].User != nil)) ||
			(v.Projected != nil && (v.Projected.DefaultUser != nil || v.Projected.Sources[0].DownwardAPI.Items[0].User != nil)) {
			t.Errorf("API server kept user fields with AtomicWriteVolumeUserFields off: %+v", v.VolumeSource)
		}
	}
	t.Run("should set DefaultUser on files [LinuxOnly] (gate off: dropped)", func(t *testing.T) {
		defaultUser := int64(1000)
		userGateOff(t, k.userPod(ns, uniqueName("downwardapi-volume-"), "/etc/podinfo/podname", nil, &defaultUser, &defaultUser))
	})
	t.Run("should set user on item file [LinuxOnly] (gate off: dropped)", func(t *testing.T) {
		user := int64(1000)
		userGateOff(t, k.userPod(ns, uniqueName("downwardapi-volume-"), "/etc/podinfo/podname", &user, nil, &user))
	})

	t.Run("should provide podname as non-root with fsgroup [LinuxOnly]", func(t *testing.T) {
		podName := uniqueName("metadata-volume-")
		gid := int64(1234)
		pod := k.simplePod(ns, podName, "/etc/podinfo/podname")
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: &gid}
		setPodNonRootUser(pod)
		expectOutput(t, c, pod, container, []string{podName + "\n"})
	})

	t.Run("should provide podname as non-root with fsgroup and defaultMode [LinuxOnly]", func(t *testing.T) {
		gid := int64(1234)
		mode := int32(0440) // setting fsGroup sets mode to at least 440
		pod := k.modePod(ns, uniqueName("metadata-volume-"), "/etc/podinfo/podname", &mode, nil)
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: &gid}
		setPodNonRootUser(pod)
		expectOutput(t, c, pod, container, []string{"mode of file \"/etc/podinfo/podname\": -r--r-----"})
	})

	// The update tests: the container prints the file every 2 s; the
	// change must show up in its log without a restart.
	update := func(t *testing.T, pod *corev1.Pod, before, after string, change func(*corev1.Pod)) {
		t.Helper()
		framework.CreatePod(t, c, pod)
		if _, err := framework.WaitPodIn(t.Context(), c, ns, pod.Name, outputPodTimeout, func(p *corev1.Pod) (bool, error) { return framework.Running(p), nil }); err != nil {
			t.Fatal(err)
		}
		eventuallyLogContains(t, c, ns, pod.Name, "client-container", before)
		if err := framework.UpdatePod(t.Context(), c, ns, pod.Name, change); err != nil {
			t.Fatalf("update pod: %v", err)
		}
		eventuallyLogContains(t, c, ns, pod.Name, "client-container", after)
		p, _ := c.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
		if p == nil || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].RestartCount != 0 || p.Status.ContainerStatuses[0].State.Running == nil {
			t.Errorf("container restarted or stopped: %s", framework.PodStatus(p))
		}
	}

	t.Run("should update labels on modification", func(t *testing.T) {
		labels := map[string]string{"key1": "value1", "key2": "value2"}
		pod := k.updatePod(ns, uniqueName("labelsupdate"), labels, map[string]string{}, "/etc/podinfo/labels", loopSeconds)
		update(t, pod, "key1=\"value1\"\n", "key3=\"value3\"\n", func(p *corev1.Pod) { p.Labels["key3"] = "value3" })
	})

	t.Run("should update annotations on modification", func(t *testing.T) {
		annotations := map[string]string{"builder": "bar"}
		pod := k.updatePod(ns, uniqueName("annotationupdate"), map[string]string{}, annotations, "/etc/podinfo/annotations", loopSeconds)
		update(t, pod, "builder=\"bar\"\n", "builder=\"foo\"\n", func(p *corev1.Pod) { p.Annotations["builder"] = "foo" })
	})

	for _, tc := range []struct{ name, file, want string }{
		{"should provide container's cpu limit", "/etc/podinfo/cpu_limit", "2\n"},
		{"should provide container's memory limit", "/etc/podinfo/memory_limit", "134217728\n"},
		{"should provide container's cpu request", "/etc/podinfo/cpu_request", "1\n"},
		{"should provide container's memory request", "/etc/podinfo/memory_request", "33554432\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectOutput(t, c, k.resourcesPod(ns, uniqueName("downwardapi-volume-"), tc.file), container, []string{tc.want})
		})
	}

	for _, tc := range []struct{ name, file string }{
		{"should provide node allocatable (cpu) as default cpu limit if the limit is not set", "/etc/podinfo/cpu_limit"},
		{"should provide node allocatable (memory) as default memory limit if the limit is not set", "/etc/podinfo/memory_limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := k.defaultResourcesPod(ns, uniqueName("downwardapi-volume-"), tc.file)
			logs := matchContainerOutput(t, c, pod, container, []string{"[1-9]"}, matchRegexp)
			// Beyond upstream: the value is the node's allocatable.
			node := nodeOf(t, c, ns, pod.Name)
			want := fmt.Sprintf("%d", node.Status.Allocatable.Memory().Value())
			if strings.HasSuffix(tc.file, "cpu_limit") {
				want = fmt.Sprintf("%d", (node.Status.Allocatable.Cpu().MilliValue()+999)/1000)
			}
			if want := fmt.Sprintf("content of file %q: %s\n", tc.file, want); logs != want {
				t.Errorf("log %q, want %q (node allocatable %v)", logs, want, node.Status.Allocatable)
			}
		})
	}
}

// eventuallyLogContains polls a container's log until it contains want.
func eventuallyLogContains(t *testing.T, c kubernetes.Interface, ns, pod, container, want string) {
	t.Helper()
	var logs string
	err := wait.PollUntilContextTimeout(t.Context(), time.Second, volumeUpdateTimeout, true, func(ctx context.Context) (bool, error) {
		logs, _ = framework.PodLogs(t.Context(), c, ns, pod, container)
		return strings.Contains(logs, want), nil
	})
	if err != nil {
		t.Fatalf("log of %s never contained %q: %v\n%s", pod, want, err, framework.Tail(logs, 20))
	}
}

// deleteGracefully is DeletePodWithWait with a short grace period: the
// containers run `tail -f /dev/null` as PID 1, which ignores SIGTERM, so
// the default 30 s would only measure the grace period.
func deleteGracefully(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	grace := int64(1)
	if err := c.CoreV1().Pods(ns).Delete(t.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatalf("failed to delete pod: %v", err)
	}
	framework.WaitGone(t, c, ns, name)
}

// walkthroughVariant is one of the seed's manifest pairs.
type walkthroughVariant struct {
	seed         string // testdata suffix
	memEnv       string // the memory env var's name as the seed spells it
	memKiB       int64  // its value: the memory limit in KiB
	memLimitByte int64
}

var walkthroughVariants = []walkthroughVariant{
	// Seed 000 spells the variable KIGIBYTES; its limit is 20Mi.
	{"000", "CONTAINER_MEMORY_LIMIT_KIGIBYTES", 20480, 20 << 20},
	// Seed 001 (as 002 and 004) spells KIBIBYTES; its limit is 4Mi.
	{"001", "CONTAINER_MEMORY_LIMIT_KIBIBYTES", 4096, 4 << 20},
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWalkthroughDownward runs WALKTHROUGH.md sections 1 and 2 with every
// kubectl version and both seed variants, on the pod name the seeds use.
func TestWalkthroughDownward(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	shared.ImportBusybox(t, e2eBusybox)
	for _, v := range framework.KubectlVersions {
		for _, variant := range walkthroughVariants {
			t.Run(fmt.Sprintf("kubectl-%s/seed-%s/env", v, variant.seed), func(t *testing.T) {
				walkthroughEnv(t, c, v, variant)
			})
			t.Run(fmt.Sprintf("kubectl-%s/seed-%s/volume", v, variant.seed), func(t *testing.T) {
				walkthroughVolume(t, c, v, variant)
			})
		}
		t.Run(fmt.Sprintf("kubectl-%s/volume-resourceFieldRef-needs-containerName", v), func(t *testing.T) {
			manifest := readTestdata(t, "downward-volume-000.yaml")
			// Drop the first containerName (item 4, containerCpuRequestMilliCores).
			bad := strings.Replace(manifest, "          containerName: main\n", "", 1)
			if bad == manifest {
				t.Fatal("testdata has no containerName line to drop")
			}
			out, err := shared.KubectlStdin(t.Context(), v, bad, "apply", "-f", "-")
			if err == nil {
				shared.Kubectl(t.Context(), v, "delete", "pod", "downward", "--grace-period=0", "--force")
				t.Fatalf("apply without containerName succeeded: %s", out)
			}
			// The API server's own text: upstream's validateDownwardAPIVolumeFile
			// is given the volume's path, without the item index, and the
			// refused volume then leaves the mount without a volume.
			want := "The Pod \"downward\" is invalid: \n" +
				"* spec.volumes[0].downwardAPI.resourceFieldRef.containerName: Required value\n" +
				"* spec.containers[0].volumeMounts[0].name: Not found: \"downward\"\n"
			if !strings.HasSuffix(err.Error(), "\n"+want) {
				t.Errorf("error %v, want stderr %q", err, want)
			}
		})
	}
	t.Run("volume-resourceFieldRef-names-another-container", func(t *testing.T) {
		ns := testNamespace(t, c, "downward-walkthrough")
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: uniqueName("downward-other-"), Namespace: ns},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{
					{
						Name: "main", Image: e2eBusybox, ImagePullPolicy: corev1.PullIfNotPresent,
						Command:      mounttestFileContent("/etc/downward/sideMemoryLimitBytes"),
						VolumeMounts: []corev1.VolumeMount{{Name: "downward", MountPath: "/etc/downward"}},
					},
					{
						Name: "side", Image: e2eBusybox, ImagePullPolicy: corev1.PullIfNotPresent,
						Command: []string{"true"},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("15m")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("20Mi")},
						},
					},
				},
				Volumes: []corev1.Volume{{Name: "downward", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
					Items: []corev1.DownwardAPIVolumeFile{{
						Path:             "sideMemoryLimitBytes",
						ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "side", Resource: "limits.memory", Divisor: resource.MustParse("1")},
					}},
				}}}},
			},
		}
		expectOutput(t, c, pod, "main", []string{`content of file "/etc/downward/sideMemoryLimitBytes": 20971520` + "\n"})
	})
}

// applyDownward applies a seed manifest of the `downward` pod with kubectl
// v, waits until `kubectl get pods` shows it 1/1 Running and returns it.
func applyDownward(t *testing.T, c kubernetes.Interface, v, manifest string) *corev1.Pod {
	t.Helper()
	ctx := t.Context()
	// A previous subtest's pod of the same name may still be going.
	framework.WaitGone(t, c, "default", "downward")
	framework.WaitServiceAccount(t, c, "default")
	if _, err := shared.KubectlStdin(ctx, v, manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// sleep as PID 1 ignores SIGTERM: skip the 30 s grace period.
		c.CoreV1().Pods("default").Delete(context.Background(), "downward", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		framework.WaitGone(t, c, "default", "downward")
	})
	out, err := shared.PollKubectl(ctx, v, framework.PodTimeout, func(out string, _ error) bool {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[0] == "downward" && f[1] == "1/1" && f[2] == "Running" && f[3] == "0" {
				return true
			}
		}
		return false
	}, "get", "pods")
	if err != nil {
		p, _ := c.CoreV1().Pods("default").Get(ctx, "downward", metav1.GetOptions{})
		t.Fatalf("kubectl get pods never showed downward 1/1 Running 0: %v\n%s\nstatus: %s", err, out, framework.PodStatus(p))
	}
	if h := strings.Fields(strings.SplitN(out, "\n", 2)[0]); strings.Join(h, " ") != "NAME READY STATUS RESTARTS AGE" {
		t.Errorf("kubectl get pods header:\n%s", out)
	}
	pod, err := c.CoreV1().Pods("default").Get(ctx, "downward", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// parseEnv parses `env` output into a map; it fails on a line that is not
// NAME=value (none of the walkthrough's values span lines).
func parseEnv(t *testing.T, out string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("env line %q is not NAME=value", line)
			continue
		}
		env[k] = val
	}
	return env
}

func walkthroughEnv(t *testing.T, c kubernetes.Interface, v string, variant walkthroughVariant) {
	ctx := t.Context()
	pod := applyDownward(t, c, v, readTestdata(t, "downward-env-"+variant.seed+".yaml"))
	svc, err := c.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := svc.Spec.ClusterIP
	want := map[string]string{
		"PATH":                             "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOSTNAME":                         "downward",
		"POD_NAME":                         "downward",
		"POD_NAMESPACE":                    "default",
		"POD_IP":                           pod.Status.PodIP,
		"NODE_NAME":                        pod.Spec.NodeName,
		"SERVICE_ACCOUNT":                  "default",
		"CONTAINER_CPU_REQUEST_MILLICORES": "15",
		variant.memEnv:                     strconv.FormatInt(variant.memKiB, 10),
		"KUBERNETES_SERVICE_HOST":          ip,
		"KUBERNETES_SERVICE_PORT":          "443",
		"KUBERNETES_SERVICE_PORT_HTTPS":    "443",
		"KUBERNETES_PORT":                  "tcp://" + ip + ":443",
		"KUBERNETES_PORT_443_TCP":          "tcp://" + ip + ":443",
		"KUBERNETES_PORT_443_TCP_PROTO":    "tcp",
		"KUBERNETES_PORT_443_TCP_PORT":     "443",
		"KUBERNETES_PORT_443_TCP_ADDR":     ip,
	}
	if pod.Status.PodIP == "" || pod.Spec.NodeName == "" {
		t.Fatalf("pod has no IP or node: %+v", pod.Status)
	}
	check := func(form string, out string) {
		t.Helper()
		got := parseEnv(t, out)
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s=%q, want %q", form, k, got[k], w)
			}
		}
		// Other services of the default namespace add their own
		// variables; nothing else may appear.
		for k := range got {
			if _, ok := want[k]; !ok && k != "HOME" && !regexp.MustCompile(`^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT|SERVICE_PORT_[A-Z0-9_]+|PORT|PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$`).MatchString(k) {
				t.Errorf("%s: unexpected variable %s=%q", form, k, got[k])
			}
		}
	}
	out, err := shared.Kubectl(ctx, v, "exec", "downward", "--", "env")
	if err != nil {
		t.Fatal(err)
	}
	check("kubectl exec downward -- env", out)

	// The seeds' old form, without "--".
	// kubectl 1.27 accepts it (with a deprecation warning); newer
	// kubectls refuse it before talking to the server.
	old, err := shared.Kubectl(ctx, v, "exec", "downward", "env")
	if v == "1.27" {
		if err != nil {
			t.Errorf("kubectl exec downward env: %v", err)
		} else {
			check("kubectl exec downward env", old)
		}
	} else if err == nil || !strings.Contains(err.Error(), "error: exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead") {
		t.Errorf("kubectl %s exec downward env: %q, %v; want kubectl's refusal", v, old, err)
	}

	// Relabelling and annotating do not change the environment.
	if _, err := shared.Kubectl(ctx, v, "label", "pod", "downward", "foo=test", "--overwrite"); err != nil {
		t.Fatal(err)
	}
	if _, err := shared.Kubectl(ctx, v, "annotate", "pod", "downward", "key1=changed", "--overwrite"); err != nil {
		t.Fatal(err)
	}
	after, err := shared.Kubectl(ctx, v, "exec", "downward", "--", "env")
	if err != nil {
		t.Fatal(err)
	}
	if after != out {
		t.Errorf("env changed after kubectl label/annotate:\nbefore:\n%s\nafter:\n%s", out, after)
	}
}

func walkthroughVolume(t *testing.T, c kubernetes.Interface, v string, variant walkthroughVariant) {
	ctx := t.Context()
	applyDownward(t, c, v, readTestdata(t, "downward-volume-"+variant.seed+".yaml"))
	kexec := func(args ...string) string {
		t.Helper()
		out, err := shared.Kubectl(ctx, v, append([]string{"exec", "downward", "--"}, args...)...)
		if err != nil {
			t.Errorf("exec %v: %v", args, err)
		}
		return out
	}

	// ls -lL lists the six files, each -rw-r--r-- (defaultMode 0644).
	ls := kexec("ls", "-lL", "/etc/downward")
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(ls), "\n") {
		if strings.HasPrefix(line, "total ") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "-rw-r--r--" {
			t.Errorf("ls -lL line %q, want a -rw-r--r-- file", line)
			continue
		}
		names = append(names, f[len(f)-1])
	}
	if got, want := strings.Join(names, " "), "annotations containerCpuRequestMilliCores containerMemoryLimitBytes labels podName podNamespace"; got != want {
		t.Errorf("ls -lL /etc/downward names %q, want %q\n%s", got, want, ls)
	}

	files := map[string]string{
		"podName":                       "downward",
		"podNamespace":                  "default",
		"labels":                        `foo="bar"`,
		"containerCpuRequestMilliCores": "15",
		"containerMemoryLimitBytes":     strconv.FormatInt(variant.memLimitByte, 10),
	}
	for name, want := range files {
		if got := kexec("cat", "/etc/downward/"+name); got != want {
			t.Errorf("cat /etc/downward/%s = %q, want %q", name, got, want)
		}
	}

	// The annotations file is kubelet's: the API object's annotations plus
	// the two kubelet adds to the pod it runs (kubernetes.io/config.seen,
	// kubernetes.io/config.source), sorted, values strconv.Quote'd, joined
	// by newlines, no final newline (seed 004 shows a real one).
	seenRe := `\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}(?:Z|[+-]\d{2}:\d{2})`
	checkAnnotations := func(wantKey1 string) (seen string) {
		t.Helper()
		// Wait for key1 to have its value (after kubectl annotate it takes
		// a moment), then compare the whole file.
		var got string
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			out, err := shared.Kubectl(ctx, v, "exec", "downward", "--", "cat", "/etc/downward/annotations")
			if err == nil {
				got = out
			}
			return strings.HasPrefix(got, "key1="+strconv.Quote(wantKey1)+"\n"), nil
		})
		if err != nil {
			t.Errorf("annotations file never had key1=%q:\n%s", wantKey1, got)
			return ""
		}
		pod, err := c.CoreV1().Pods("default").Get(ctx, "downward", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lastApplied := pod.Annotations["kubectl.kubernetes.io/last-applied-configuration"]
		if lastApplied == "" {
			t.Errorf("no last-applied-configuration annotation: %v", pod.Annotations)
		}
		want := regexp.QuoteMeta(strings.Join([]string{
			`key1=` + strconv.Quote(wantKey1),
			`key2="multi\nline\nvalue\n"`,
			`kubectl.kubernetes.io/last-applied-configuration=` + strconv.Quote(lastApplied),
			`kubernetes.io/config.seen="`,
		}, "\n")) + "(" + seenRe + ")" + regexp.QuoteMeta("\"\n"+`kubernetes.io/config.source="api"`)
		m := regexp.MustCompile("^" + want + "$").FindStringSubmatch(got)
		if m == nil {
			hint := ""
			if !strings.Contains(got, "\nkubernetes.io/config.seen=") || !strings.HasSuffix(got, "\nkubernetes.io/config.source=\"api\"") {
				hint = " (kubelet's kubernetes.io/config.seen and kubernetes.io/config.source=\"api\" lines are missing)"
			}
			t.Errorf("cat /etc/downward/annotations%s =\n%s\nwant (regexp)\n%s", hint, got, want)
			return ""
		}
		return m[1]
	}
	seen := checkAnnotations("value1")

	envBefore := kexec("env")
	// Relabel: the file follows, the container keeps running.
	if _, err := shared.Kubectl(ctx, v, "label", "pod", "downward", "foo=test", "--overwrite"); err != nil {
		t.Fatal(err)
	}
	labels, err := shared.PollKubectl(ctx, v, 30*time.Second, func(labels string, _ error) bool { return labels == `foo="test"` },
		"exec", "downward", "--", "cat", "/etc/downward/labels")
	if err != nil {
		t.Errorf("labels file %q after kubectl label, want %q", labels, `foo="test"`)
	}
	if _, err := shared.Kubectl(ctx, v, "annotate", "pod", "downward", "key1=changed", "--overwrite"); err != nil {
		t.Fatal(err)
	}
	// kubelet keeps the first-seen time across updates.
	if seenAfter := checkAnnotations("changed"); seenAfter != seen {
		t.Errorf("kubernetes.io/config.seen changed from %q to %q", seen, seenAfter)
	}
	if envAfter := kexec("env"); envAfter != envBefore {
		t.Errorf("env changed:\nbefore:\n%s\nafter:\n%s", envBefore, envAfter)
	}
	pod, err := c.CoreV1().Pods("default").Get(ctx, "downward", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cs := pod.Status.ContainerStatuses; len(cs) != 1 || cs[0].RestartCount != 0 || cs[0].State.Running == nil {
		t.Errorf("container restarted: %s", framework.PodStatus(pod))
	}
	// The other files are unchanged.
	for name, want := range files {
		if name == "labels" {
			continue
		}
		if got := kexec("cat", "/etc/downward/"+name); got != want {
			t.Errorf("after relabel: cat /etc/downward/%s = %q, want %q", name, got, want)
		}
	}
}
