package agent

import (
	"context"
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
)

// forbidGets makes the first n ConfigMap GETs fail as the Node authorizer
// does before its graph has the pod, and counts all of them.
func forbidGets(client *fake.Clientset, n int, gets *int) {
	client.PrependReactor("get", "configmaps", func(a core.Action) (bool, k8sruntime.Object, error) {
		*gets++
		if *gets > n {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(v1.Resource("configmaps"), a.(core.GetAction).GetName(),
			errNoRelationship)
	})
}

var errNoRelationship = errors.New("node: no relationship found between node 'vm' and this object")

// A pod just bound can reach the agent before the Node authorizer's graph
// has it: the GET is asked again until it is allowed, as kubelet waits for
// its object watch to sync.
func TestConfigMapForbiddenWhileAuthorizerCatchesUp(t *testing.T) {
	ctx := context.Background()
	client := fake.NewSimpleClientset(&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}, Data: map[string]string{"k": "v"}})
	var gets int
	forbidGets(client, 2, &gets)
	o := &apiObjects{client: client}
	cm, err := o.ConfigMap(ctx, "ns", "cm")
	if err != nil {
		t.Fatalf("ConfigMap: %v", err)
	}
	if cm.Data["k"] != "v" || gets != 3 {
		t.Errorf("got %v after %d GETs, want the ConfigMap after 3", cm.Data, gets)
	}

	// Missing, once allowed: kubelet's not-found error.
	gets = 0
	if _, err := o.ConfigMap(ctx, "ns", "absent"); !apierrors.IsNotFound(err) || err.Error() != `configmap "absent" not found` {
		t.Errorf("absent ConfigMap: %v", err)
	}
}

// A node that may never read the object gets the API server's refusal, after
// about the second kubelet waits.
func TestConfigMapForbiddenStaysForbidden(t *testing.T) {
	client := fake.NewSimpleClientset()
	var gets int
	forbidGets(client, 1<<30, &gets)
	o := &apiObjects{client: client}
	_, err := o.ConfigMap(context.Background(), "ns", "cm")
	if !apierrors.IsForbidden(err) {
		t.Fatalf("err %v, want Forbidden", err)
	}
	if gets < 2 || gets > 20 {
		t.Errorf("%d GETs, want a few within forbiddenWait", gets)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gets = 0
	if _, err := o.ConfigMap(ctx, "ns", "cm"); err == nil || gets > 1 {
		t.Errorf("cancelled: %v after %d GETs, want an error after at most 1", err, gets)
	}
}
