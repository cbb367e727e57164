package apiserver

import (
	"errors"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// One try of the copied hook makes every object of upstream's bootstrap
// policy and is done; a second try finds them in place and writes
// nothing. (That the hook runs at once and /readyz waits for it is
// TestBootstrapRoles, in test/e2e.)
func TestEnsureRBACPolicy(t *testing.T) {
	ctx := t.Context()
	client := fake.NewClientset()
	p := bootstrapPolicy()
	if done, err := ensureRBACPolicy(p, client); !done || err != nil {
		t.Fatalf("first try: done %v, %v", done, err)
	}
	for _, r := range p.ClusterRoles {
		if _, err := client.RbacV1().ClusterRoles().Get(ctx, r.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("clusterrole %s: %v", r.Name, err)
		}
	}
	for _, b := range p.ClusterRoleBindings {
		if _, err := client.RbacV1().ClusterRoleBindings().Get(ctx, b.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("clusterrolebinding %s: %v", b.Name, err)
		}
	}
	for ns, roles := range p.Roles {
		for _, r := range roles {
			if _, err := client.RbacV1().Roles(ns).Get(ctx, r.Name, metav1.GetOptions{}); err != nil {
				t.Errorf("role %s/%s: %v", ns, r.Name, err)
			}
		}
	}
	for ns, bindings := range p.RoleBindings {
		for _, b := range bindings {
			if _, err := client.RbacV1().RoleBindings(ns).Get(ctx, b.Name, metav1.GetOptions{}); err != nil {
				t.Errorf("rolebinding %s/%s: %v", ns, b.Name, err)
			}
		}
	}
	if len(p.ClusterRoles) < 50 || len(p.ClusterRoleBindings) < 40 {
		t.Errorf("%d cluster roles, %d bindings: not upstream's bootstrap policy", len(p.ClusterRoles), len(p.ClusterRoleBindings))
	}

	var writes atomic.Int32
	client.PrependReactor("*", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			writes.Add(1)
		}
		return false, nil, nil
	})
	if done, err := ensureRBACPolicy(p, client); !done || err != nil || writes.Load() != 0 {
		t.Errorf("second try: done %v, %v, %d writes; want done, none", done, err, writes.Load())
	}
}

// A reconcile that fails leaves the try not done, as upstream's, and the
// objects reconciled beside it are made all the same; the next try makes
// the one that failed.
func TestEnsureRBACPolicyOneFails(t *testing.T) {
	ctx := t.Context()
	client := fake.NewClientset()
	p := bootstrapPolicy()
	refuse := p.ClusterRoleBindings[len(p.ClusterRoleBindings)/2].Name
	var refused atomic.Bool
	client.PrependReactor("create", "clusterrolebindings", func(a clienttesting.Action) (bool, runtime.Object, error) {
		name := a.(clienttesting.CreateAction).GetObject().(metav1.Object).GetName()
		if name == refuse && !refused.Load() {
			return true, nil, errors.New("etcd went away")
		}
		return false, nil, nil
	})
	if done, err := ensureRBACPolicy(p, client); done || err != nil {
		t.Fatalf("first try: done %v, %v; want not done, no error", done, err)
	}
	for _, b := range p.ClusterRoleBindings {
		_, err := client.RbacV1().ClusterRoleBindings().Get(ctx, b.Name, metav1.GetOptions{})
		if b.Name == refuse {
			if err == nil {
				t.Errorf("clusterrolebinding %s exists; its create was refused", b.Name)
			}
		} else if err != nil {
			t.Errorf("clusterrolebinding %s: %v", b.Name, err)
		}
	}
	for ns, bindings := range p.RoleBindings {
		for _, b := range bindings {
			if _, err := client.RbacV1().RoleBindings(ns).Get(ctx, b.Name, metav1.GetOptions{}); err != nil {
				t.Errorf("rolebinding %s/%s: %v", ns, b.Name, err)
			}
		}
	}
	refused.Store(true)
	if done, err := ensureRBACPolicy(p, client); !done || err != nil {
		t.Fatalf("second try: done %v, %v; want done", done, err)
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Get(ctx, refuse, metav1.GetOptions{}); err != nil {
		t.Errorf("clusterrolebinding %s after the second try: %v", refuse, err)
	}
}
