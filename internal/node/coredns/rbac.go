package coredns

import (
	"context"
	"fmt"
	"reflect"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// RoleName names the ClusterRole and ClusterRoleBinding EnsureRBAC
// writes, as kubeadm's CoreDNS addon names them.
const RoleName = "system:coredns"

// rules are what CoreDNS's kubernetes plugin lists and watches (kubeadm's
// system:coredns ClusterRole): it always watches Namespaces, which
// system:node-proxier may not read, and Pods with "pods verified".
var rules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
}

// EnsureRBAC creates or restores the ClusterRole system:coredns and a
// ClusterRoleBinding of it to the user CoreDNS authenticates as. It makes
// no write when both are in place.
func EnsureRBAC(ctx context.Context, client kubernetes.Interface, user string) error {
	labels := map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: RoleName, Labels: labels},
		Rules:      rules,
	}
	roles := client.RbacV1().ClusterRoles()
	got, err := roles.Get(ctx, RoleName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := roles.Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRole %s: %w", RoleName, err)
		}
	case err != nil:
		return fmt.Errorf("get ClusterRole %s: %w", RoleName, err)
	case !reflect.DeepEqual(got.Rules, rules):
		got = got.DeepCopy()
		got.Rules = rules
		if _, err := roles.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update ClusterRole %s: %w", RoleName, err)
		}
	}

	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: RoleName, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: RoleName},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	bindings := client.RbacV1().ClusterRoleBindings()
	gotBinding, err := bindings.Get(ctx, RoleName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", RoleName, err)
		}
	case err != nil:
		return fmt.Errorf("get ClusterRoleBinding %s: %w", RoleName, err)
	case gotBinding.RoleRef != binding.RoleRef:
		// roleRef is immutable.
		if err := bindings.Delete(ctx, RoleName, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("delete ClusterRoleBinding %s: %w", RoleName, err)
		}
		if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", RoleName, err)
		}
	case !reflect.DeepEqual(gotBinding.Subjects, binding.Subjects):
		gotBinding = gotBinding.DeepCopy()
		gotBinding.Subjects = binding.Subjects
		if _, err := bindings.Update(ctx, gotBinding, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update ClusterRoleBinding %s: %w", RoleName, err)
		}
	}
	return nil
}
