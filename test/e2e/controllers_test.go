//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/pocketkube/pocketkube/test/framework"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The upstream controllers run: every namespace gets its default service
// account and the kube-root-ca.crt ConfigMap holding the cluster CA.
func TestControllerManagerPopulatesNamespace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-controllers"}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err1 := c.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		cm, err2 := c.CoreV1().ConfigMaps(ns.Name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err1 == nil && err2 == nil && strings.HasPrefix(cm.Data["ca.crt"], "-----BEGIN CERTIFICATE-----"), nil
	})
	if err != nil {
		t.Fatalf("namespace %s never got its service account and kube-root-ca.crt: %v", ns.Name, err)
	}
}

// batchJobImage pushes the walkthrough's luksa/batch-job to a registry of
// the test's own and returns its name there: offline is the contract, so
// no test pulls from the network. Like the original it runs a while, then
// exits 0 (and at once on SIGTERM).
func batchJobImage(t *testing.T) string {
	t.Helper()
	host, _ := framework.StartRegistry(t, "", "")
	image := host + "/luksa/batch-job"
	framework.PushBusybox(t, image, v1.Config{
		Cmd: []string{"sh", "-c", "trap 'exit 0' TERM; echo Batch job starting; sleep 120 & wait; echo Finished succesfully"},
		Env: []string{"PATH=/bin"},
	}, authn.Anonymous)
	return image
}

// The job controller makes the Job's pod and the scheduler places it: a
// pod that no node fits stays unscheduled with the scheduler's reason;
// one that fits is bound to the node, which tries to pull its image and
// reports the registry's answer.
func TestJobPodIsScheduledOrPending(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	host, _ := framework.StartRegistry(t, "", "") // serves no image at all
	missing := host + "/luksa/batch-job:missing"
	// jobPod creates Job name with extra pod spec lines and waits until
	// its pod satisfies cond.
	jobPod := func(t *testing.T, name, specLines string, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		manifest := fmt.Sprintf(jobYAML, name, missing) + specLines
		if _, err := shared.KubectlStdin(ctx, framework.Newest(), manifest, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			bg := metav1.DeletePropagationBackground
			c.BatchV1().Jobs("default").Delete(context.Background(), name, metav1.DeleteOptions{PropagationPolicy: &bg})
		})
		var pod *corev1.Pod
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
			pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + name})
			if err != nil || len(pods.Items) == 0 {
				return false, nil
			}
			pod = &pods.Items[0]
			return cond(pod), nil
		})
		if err != nil {
			t.Fatalf("job %s: pod never %s: %v (pod %s, conditions %+v)", name, what, err, framework.PodStatus(pod), podConditions(pod))
		}
		return pod
	}
	scheduled := func(p *corev1.Pod) *corev1.PodCondition {
		for i, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled {
				return &p.Status.Conditions[i]
			}
		}
		return nil
	}

	t.Run("no node fits", func(t *testing.T) {
		// It tolerates every taint (a node just started is tainted
		// not-ready), so the node selector alone rules the node out.
		spec := "      nodeSelector:\n        e2e.pocketkube.test/no-such-label: \"true\"\n      tolerations: [{operator: Exists}]\n"
		pod := jobPod(t, "sched-nofit", spec, "unschedulable", func(p *corev1.Pod) bool {
			return scheduled(p) != nil
		})
		cond := scheduled(pod)
		want := "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
		if cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable || cond.Message != want {
			t.Errorf("PodScheduled = %+v\nwant False, Unschedulable, %q", *cond, want)
		}
		if pod.Spec.NodeName != "" || pod.Status.Phase != corev1.PodPending {
			t.Errorf("node %q phase %s, want no node and Pending", pod.Spec.NodeName, pod.Status.Phase)
		}
	})
	t.Run("image not in the registry", func(t *testing.T) {
		pod := jobPod(t, "sched-nopull", "", "failing to pull", func(p *corev1.Pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			w := p.Status.ContainerStatuses[0].State.Waiting
			return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff")
		})
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			t.Fatalf("nodes: %v, %v", nodes, err)
		}
		if cond := scheduled(pod); cond == nil || cond.Status != corev1.ConditionTrue || pod.Spec.NodeName != nodes.Items[0].Name {
			t.Errorf("PodScheduled %+v on node %q, want True on %s", cond, pod.Spec.NodeName, nodes.Items[0].Name)
		}
		w := pod.Status.ContainerStatuses[0].State.Waiting
		if !strings.Contains(w.Message, missing) || !strings.Contains(strings.ToLower(w.Message), "not found") {
			t.Errorf("waiting %s: %q, want the registry's not found for %s", w.Reason, w.Message, missing)
		}
		if pod.Status.Phase != corev1.PodPending {
			t.Errorf("phase %s, want Pending", pod.Status.Phase)
		}
	})
}

func podConditions(p *corev1.Pod) []corev1.PodCondition {
	if p == nil {
		return nil
	}
	return p.Status.Conditions
}

func TestJobRunsToComplete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	shared.ImportBusybox(t, "busybox")
	manifest := `apiVersion: batch/v1
kind: Job
metadata:
  name: e2e-batch
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "echo batch done"]
`
	if _, err := shared.KubectlStdin(ctx, framework.Newest(), manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shared.Kubectl(context.Background(), framework.Newest(), "delete", "job", "e2e-batch", "--cascade=background", "--wait=false")
	})
	if _, err := shared.Kubectl(ctx, framework.Newest(), "wait", "--for=condition=Complete", "job/e2e-batch", "--timeout=60s"); err != nil {
		t.Fatal(err)
	}
	out, err := shared.Kubectl(ctx, framework.Newest(), "logs", "job/e2e-batch")
	if err != nil || out != "batch done\n" {
		t.Errorf("job logs %q, %v", out, err)
	}
}
