package bootstrap

import (
	"context"
	"fmt"
	"reflect"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DNSRoleName names the ClusterRole and ClusterRoleBinding that let the
// cluster DNS server read what it serves, as kubeadm's CoreDNS addon names
// them.
const DNSRoleName = "system:coredns"

// rules are what CoreDNS's kubernetes plugin lists and watches (kubeadm's
// system:coredns ClusterRole): it always watches Namespaces, which
// system:node-proxier may not read, and Pods with "pods verified".
var dnsRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
}

// NetworkPolicyRoleName names the ClusterRole and ClusterRoleBinding that
// let the node's NetworkPolicy enforcer read what it enforces, after
// kube-network-policies' ClusterRole.
const NetworkPolicyRoleName = "system:kube-network-policies"

// networkPolicyRules are what the enforcer (internal/node/netpol) lists
// and watches.
var networkPolicyRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods", "namespaces"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list", "watch"}},
}

// ensureDNSRBAC creates or restores the ClusterRole system:coredns and a
// ClusterRoleBinding of it to the user CoreDNS authenticates as. It makes
// no write when both are in place.
func ensureDNSRBAC(ctx context.Context, client kubernetes.Interface, user string) error {
	return ensureRBAC(ctx, client, DNSRoleName, dnsRules, user)
}

// ensureRBAC creates or restores the ClusterRole name with rules and a
// ClusterRoleBinding of the same name of it to user. It makes no write when
// both are in place.
func ensureRBAC(ctx context.Context, client kubernetes.Interface, name string, rules []rbacv1.PolicyRule, user string) error {
	labels := map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}
	if err := ensureClusterRole(ctx, client, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Rules:      rules,
	}); err != nil {
		return err
	}
	return ensureClusterRoleBinding(ctx, client, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	})
}

// ensureClusterRole creates role, or restores its rules; no write when
// they are in place.
func ensureClusterRole(ctx context.Context, client kubernetes.Interface, role *rbacv1.ClusterRole) error {
	roles := client.RbacV1().ClusterRoles()
	got, err := roles.Get(ctx, role.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := roles.Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRole %s: %w", role.Name, err)
		}
	case err != nil:
		return fmt.Errorf("get ClusterRole %s: %w", role.Name, err)
	case !reflect.DeepEqual(got.Rules, role.Rules):
		got = got.DeepCopy()
		got.Rules = role.Rules
		if _, err := roles.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update ClusterRole %s: %w", role.Name, err)
		}
	}
	return nil
}

// ensureClusterRoleBinding creates binding, or restores its roleRef (by
// making it again: roleRef is immutable) and its subjects; no write when
// they are in place.
func ensureClusterRoleBinding(ctx context.Context, client kubernetes.Interface, binding *rbacv1.ClusterRoleBinding) error {
	bindings := client.RbacV1().ClusterRoleBindings()
	got, err := bindings.Get(ctx, binding.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", binding.Name, err)
		}
	case err != nil:
		return fmt.Errorf("get ClusterRoleBinding %s: %w", binding.Name, err)
	case got.RoleRef != binding.RoleRef:
		if err := bindings.Delete(ctx, binding.Name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("delete ClusterRoleBinding %s: %w", binding.Name, err)
		}
		if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", binding.Name, err)
		}
	case !reflect.DeepEqual(got.Subjects, binding.Subjects):
		got = got.DeepCopy()
		got.Subjects = binding.Subjects
		if _, err := bindings.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update ClusterRoleBinding %s: %w", binding.Name, err)
		}
	}
	return nil
}
