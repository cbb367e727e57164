//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// The upstream controllers run: every namespace gets its default service
// account and the kube-root-ca.crt ConfigMap holding the cluster CA.
func TestControllerManagerPopulatesNamespace(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-controllers"}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}) })
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err1 := c.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		cm, err2 := c.CoreV1().ConfigMaps(ns.Name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err1 == nil && err2 == nil && strings.HasPrefix(cm.Data["ca.crt"], "-----BEGIN CERTIFICATE-----"), nil
	})
	if err != nil {
		t.Fatalf("namespace %s never got its service account and kube-root-ca.crt: %v", ns.Name, err)
	}
}

// The job controller makes the Job's pod and the scheduler binds it (or,
// without a node, reports it Unschedulable): both components are at work.
// Its image, luksa/batch-job, cannot be pulled offline, so it stays
// Pending either way; TestJobRunsToComplete runs a Job for real.
func TestJobPodIsScheduledOrPending(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	if _, err := shared.KubectlStdin(ctx, framework.KubectlVersions[len(framework.KubectlVersions)-1], strings.ReplaceAll(jobYAML, "%s", "sched-job"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := metav1.DeletePropagationBackground
		c.BatchV1().Jobs("default").Delete(ctx, "sched-job", metav1.DeleteOptions{PropagationPolicy: &bg})
	})
	var pod corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "job-name=sched-job"})
		if err != nil || len(pods.Items) == 0 {
			return false, nil
		}
		pod = pods.Items[0]
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodScheduled {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("job pod never got a PodScheduled condition: %v (pod %+v)", err, pod.Status)
	}
	if pod.Spec.NodeName == "" {
		cond := pod.Status.Conditions[0]
		if cond.Reason != "Unschedulable" || cond.Message != "no nodes available to schedule pods" {
			t.Errorf("PodScheduled = %+v, want Unschedulable with upstream's message", cond)
		}
	}
	if pod.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", pod.Status.Phase)
	}
}
