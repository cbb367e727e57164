package bootstrap

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/utils/ptr"
)

// DefaultStorageClassName is the name of the cluster's default
// StorageClass, as k3s and kind name theirs.
const DefaultStorageClassName = "local-path"

// The annotation that makes a StorageClass the default (upstream's
// storageutil.IsDefaultStorageClassAnnotation), and the label that marks
// the class as Run's, so that Run deletes only its own.
const (
	isDefaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
	managedByLabel           = "app.kubernetes.io/managed-by"
)

func desiredStorageClass(provisioner string) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        DefaultStorageClassName,
			Annotations: map[string]string{isDefaultClassAnnotation: "true"},
			Labels:      map[string]string{managedByLabel: ManagedBy},
		},
		Provisioner:       provisioner,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

// ensureStorageClass creates the default StorageClass with provisioner
// when no class of its name exists. An existing class is left as it is: a
// StorageClass's provisioner and parameters are immutable, and a user who
// took the default annotation off, or replaced the class with one of their
// own, meant it.
func ensureStorageClass(ctx context.Context, client kubernetes.Interface, provisioner string) error {
	return wait.PollUntilContextCancel(ctx, retryInterval, true, func(ctx context.Context) (bool, error) {
		classes := client.StorageV1().StorageClasses()
		_, err := classes.Get(ctx, DefaultStorageClassName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			var sc *storagev1.StorageClass
			sc, err = classes.Create(ctx, desiredStorageClass(provisioner), metav1.CreateOptions{FieldManager: "pocketkube"})
			if err == nil {
				klog.FromContext(ctx).Info("Created StorageClass", "storageClass", sc.Name, "provisioner", provisioner)
			}
			if apierrors.IsAlreadyExists(err) {
				err = nil
			}
		}
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Creating the default StorageClass, will retry", "err", err)
		}
		return err == nil, nil
	})
}

// removeStorageClass deletes the default StorageClass if Run created it:
// its provisioner no longer runs, and a claim of it would stay Pending.
// A class of the same name that a user brought is left alone.
func removeStorageClass(ctx context.Context, client kubernetes.Interface) error {
	return wait.PollUntilContextCancel(ctx, retryInterval, true, func(ctx context.Context) (bool, error) {
		classes := client.StorageV1().StorageClasses()
		sc, err := classes.Get(ctx, DefaultStorageClassName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err == nil && sc.Labels[managedByLabel] != ManagedBy {
			return true, nil
		}
		if err == nil {
			err = classes.Delete(ctx, sc.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &sc.UID}})
			if err == nil {
				klog.FromContext(ctx).Info("Deleted StorageClass", "storageClass", sc.Name)
			}
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return false, nil // gone or replaced meanwhile: look again
			}
		}
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Deleting the default StorageClass, will retry", "err", err)
		}
		return err == nil, nil
	})
}

// NodesLocalPathRoleName names the ClusterRole, and the ClusterRoleBinding
// of it to group system:nodes, that let every node's local-path
// provisioner (internal/node/localpath) run with the node's own
// credentials: read claims and classes, create the PVs of the claims
// scheduled to it and delete its released ones. The Node authorizer
// grants a node none of that (only get, of the PVs and claims of its own
// pods). Run makes them only while the cluster serves local-path volumes.
const NodesLocalPathRoleName = "pocketkube:node-local-path"

// NodesLocalPathPolicyName names the ValidatingAdmissionPolicy, and its
// binding, that confine NodesLocalPathRoleName's grant to each node's own
// PVs (a policy's name is a DNS subdomain: no colon).
const NodesLocalPathPolicyName = "pocketkube-node-local-path"

// localPathRules are what sig-storage-lib-external-provisioner's
// controller lists and watches, and writes (PVs only: it updates a claim
// only to reschedule it, which a node's provisioner never asks for, and
// adds no finalizers). Events, the Node authorizer already grants.
var localPathRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"persistentvolumes"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
	{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"storageclasses"}, Verbs: []string{"get", "list", "watch"}},
}

// ensureNodesLocalPath creates or restores NodesLocalPathRoleName's
// ClusterRole and its binding to group system:nodes, and the admission
// policy that confines them to each node's own PVs.
func ensureNodesLocalPath(ctx context.Context, client kubernetes.Interface) error {
	// The policy first: the grant without it is wider than meant.
	if err := ensureNodeLocalPathPolicy(ctx, client); err != nil {
		return err
	}
	if err := ensureClusterRole(ctx, client, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: NodesLocalPathRoleName, Labels: map[string]string{managedByLabel: ManagedBy}},
		Rules:      localPathRules,
	}); err != nil {
		return err
	}
	return ensureClusterRoleBinding(ctx, client, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: NodesLocalPathRoleName, Labels: map[string]string{managedByLabel: ManagedBy}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: NodesLocalPathRoleName},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: kubeadmconstants.NodesGroup}},
	})
}

// nodeLocalPathPolicy is the CEL that confines a node's PV writes to PVs
// of its own node: the one node of the PV's affinity (the shape
// internal/node/localpath gives its PVs) must be the requesting node.
// Without it, the grant of NodesLocalPathRoleName would let one node make
// a hostPath PV of another node's root file system, or delete another
// node's PVs.
const nodeLocalPathPolicy = `has(variables.pv.spec.nodeAffinity) && has(variables.pv.spec.nodeAffinity.required) &&
variables.pv.spec.nodeAffinity.required.nodeSelectorTerms.size() == 1 &&
has(variables.pv.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions) &&
variables.pv.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions.size() == 1 &&
variables.pv.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].key == 'kubernetes.io/hostname' &&
variables.pv.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].operator == 'In' &&
variables.pv.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values == [request.userInfo.username.substring(12)]`

// desiredNodeLocalPathPolicy is the ValidatingAdmissionPolicy, and its
// binding, both named NodesLocalPathPolicyName, that let a node (a user
// system:node:NAME in group system:nodes) create and delete only PVs with
// a node affinity to NAME.
func desiredNodeLocalPathPolicy() (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	labels := map[string]string{managedByLabel: ManagedBy}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: NodesLocalPathPolicyName, Labels: labels},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Delete},
						Rule: admissionregistrationv1.Rule{
							APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"persistentvolumes"},
						},
					},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "node",
				Expression: "'" + kubeadmconstants.NodesGroup + "' in request.userInfo.groups && request.userInfo.username.startsWith('system:node:')",
			}},
			Variables: []admissionregistrationv1.Variable{{
				Name:       "pv",
				Expression: "request.operation == 'DELETE' ? oldObject : object",
			}},
			Validations: []admissionregistrationv1.Validation{{
				Expression:        nodeLocalPathPolicy,
				MessageExpression: "'node ' + request.userInfo.username.substring(12) + ' may create and delete only PersistentVolumes with a node affinity to itself'",
				Reason:            ptr.To(metav1.StatusReasonForbidden),
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: NodesLocalPathPolicyName, Labels: labels},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        NodesLocalPathPolicyName,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	return policy, binding
}

// ensureNodeLocalPathPolicy creates or restores desiredNodeLocalPathPolicy.
func ensureNodeLocalPathPolicy(ctx context.Context, client kubernetes.Interface) error {
	want, wantBinding := desiredNodeLocalPathPolicy()
	policies := client.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	got, err := policies.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := policies.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ValidatingAdmissionPolicy %s: %w", want.Name, err)
		}
	case err != nil:
		return fmt.Errorf("get ValidatingAdmissionPolicy %s: %w", want.Name, err)
	case !equality.Semantic.DeepDerivative(want.Spec, got.Spec):
		got = got.DeepCopy()
		got.Spec = want.Spec
		if _, err := policies.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update ValidatingAdmissionPolicy %s: %w", want.Name, err)
		}
	}
	bindings := client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	gotBinding, err := bindings.Get(ctx, wantBinding.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := bindings.Create(ctx, wantBinding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ValidatingAdmissionPolicyBinding %s: %w", wantBinding.Name, err)
		}
	case err != nil:
		return fmt.Errorf("get ValidatingAdmissionPolicyBinding %s: %w", wantBinding.Name, err)
	case !equality.Semantic.DeepDerivative(wantBinding.Spec, gotBinding.Spec):
		gotBinding = gotBinding.DeepCopy()
		gotBinding.Spec = wantBinding.Spec
		if _, err := bindings.Update(ctx, gotBinding, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update ValidatingAdmissionPolicyBinding %s: %w", wantBinding.Name, err)
		}
	}
	return nil
}

// removeNodesLocalPath deletes the binding and the ClusterRole
// NodesLocalPathRoleName, so that the nodes' provisioners stop (or never
// start) serving the provisioner name a user's own provisioner now serves.
func removeNodesLocalPath(ctx context.Context, client kubernetes.Interface) error {
	bindings, roles := client.RbacV1().ClusterRoleBindings(), client.RbacV1().ClusterRoles()
	if _, err := bindings.Get(ctx, NodesLocalPathRoleName, metav1.GetOptions{}); err == nil {
		if err := bindings.Delete(ctx, NodesLocalPathRoleName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete ClusterRoleBinding %s: %w", NodesLocalPathRoleName, err)
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get ClusterRoleBinding %s: %w", NodesLocalPathRoleName, err)
	}
	if _, err := roles.Get(ctx, NodesLocalPathRoleName, metav1.GetOptions{}); err == nil {
		if err := roles.Delete(ctx, NodesLocalPathRoleName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete ClusterRole %s: %w", NodesLocalPathRoleName, err)
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get ClusterRole %s: %w", NodesLocalPathRoleName, err)
	}
	// The policy last: it confines the grant while the grant is there.
	policyBindings := client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	if _, err := policyBindings.Get(ctx, NodesLocalPathPolicyName, metav1.GetOptions{}); err == nil {
		if err := policyBindings.Delete(ctx, NodesLocalPathPolicyName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete ValidatingAdmissionPolicyBinding %s: %w", NodesLocalPathPolicyName, err)
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get ValidatingAdmissionPolicyBinding %s: %w", NodesLocalPathPolicyName, err)
	}
	policies := client.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	if _, err := policies.Get(ctx, NodesLocalPathPolicyName, metav1.GetOptions{}); err == nil {
		if err := policies.Delete(ctx, NodesLocalPathPolicyName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete ValidatingAdmissionPolicy %s: %w", NodesLocalPathPolicyName, err)
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get ValidatingAdmissionPolicy %s: %w", NodesLocalPathPolicyName, err)
	}
	return nil
}

// storageClass runs ensureStorageClass and ensureNodesLocalPath, or
// removeStorageClass and removeNodesLocalPath, as provisioner asks.
func storageClass(ctx context.Context, client kubernetes.Interface, provisioner string) error {
	if provisioner == "" {
		if err := retry(ctx, "Withdrawing the nodes' local-path access", func(ctx context.Context) error {
			return removeNodesLocalPath(ctx, client)
		}); err != nil {
			return fmt.Errorf("withdraw the nodes' local-path access: %w", err)
		}
		if err := removeStorageClass(ctx, client); err != nil {
			return fmt.Errorf("remove StorageClass %s: %w", DefaultStorageClassName, err)
		}
		return nil
	}
	// The class first: a claim made without a class before the default
	// class exists gets it only at the PV controller's next resync (15 s
	// later), and the grant takes a while (the admission policy's CEL is
	// compiled when it is created: ~2 s of a cold start). A claim of the
	// class waits for the grant at most the provisioner's access retry.
	if err := ensureStorageClass(ctx, client, provisioner); err != nil {
		return fmt.Errorf("create StorageClass %s: %w", DefaultStorageClassName, err)
	}
	if err := retry(ctx, "Granting the nodes' local-path provisioners their access", func(ctx context.Context) error {
		return ensureNodesLocalPath(ctx, client)
	}); err != nil {
		return fmt.Errorf("grant the nodes' local-path provisioners their access: %w", err)
	}
	return nil
}
