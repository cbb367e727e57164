package controllermanager

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
)

// Every account made ahead is one upstream's bootstrap policy binds in
// kube-system, and every controller binding of that policy has its account
// in the list or is one of the three without a controller here: a
// controller upstream adds or drops fails this test.
func TestServiceAccountsAreUpstreamPolicy(t *testing.T) {
	policy := sets.New[string]()
	controllers := sets.New[string]()
	for _, b := range bootstrappolicy.ControllerRoleBindings() {
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Namespace == metav1.NamespaceSystem {
				policy.Insert(s.Name)
				controllers.Insert(s.Name)
			}
		}
	}
	for _, bs := range bootstrappolicy.NamespaceRoleBindings() {
		for _, b := range bs {
			for _, s := range b.Subjects {
				if s.Kind == "ServiceAccount" && s.Namespace == metav1.NamespaceSystem {
					policy.Insert(s.Name)
				}
			}
		}
	}
	list := sets.New(ServiceAccounts...)
	if len(list) != len(ServiceAccounts) {
		t.Errorf("ServiceAccounts has duplicates")
	}
	if extra := list.Difference(policy); extra.Len() > 0 {
		t.Errorf("not in upstream's bootstrap policy: %v", sets.List(extra))
	}
	without := sets.New("route-controller", "service-controller", "selinux-warning-controller")
	if missing := controllers.Difference(list).Difference(without); missing.Len() > 0 {
		t.Errorf("upstream's policy binds controllers without an account here: %v", sets.List(missing))
	}
}

func TestCreateServiceAccounts(t *testing.T) {
	client := fake.NewSimpleClientset(&v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "job-controller", Labels: map[string]string{"kept": "yes"}}})
	// kube-system appears only after a few tries, as while the API
	// server's system namespaces hook runs.
	var creates, lists atomic.Int32
	client.PrependReactor("list", "serviceaccounts", func(core.Action) (bool, k8sruntime.Object, error) {
		if lists.Add(1) < 3 {
			return true, nil, apierrors.NewServiceUnavailable("starting")
		}
		return false, nil, nil
	})
	client.PrependReactor("create", "serviceaccounts", func(a core.Action) (bool, k8sruntime.Object, error) {
		if creates.Add(1) <= 5 {
			return true, nil, apierrors.NewNotFound(v1.Resource("namespaces"), "kube-system")
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	CreateServiceAccounts(ctx, client)
	l, err := client.CoreV1().ServiceAccounts("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sa := range l.Items {
		got = append(got, sa.Name)
		if sa.Name == "job-controller" && sa.Labels["kept"] != "yes" {
			t.Errorf("the existing job-controller account was replaced: %+v", sa)
		}
		if sa.Name != "job-controller" && (len(sa.Labels) != 0 || len(sa.Annotations) != 0 || len(sa.Secrets) != 0) {
			t.Errorf("account %s is not the bare one the controller-manager makes: %+v", sa.Name, sa)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(ServiceAccounts))
	if !slices.Equal(got, want) {
		t.Errorf("accounts %v, want %v", got, want)
	}
	// The existing one was not created again; the refused ones were.
	if n := int(creates.Load()); n != len(ServiceAccounts)-1+5 {
		t.Errorf("%d creates, want %d", n, len(ServiceAccounts)-1+5)
	}
}
