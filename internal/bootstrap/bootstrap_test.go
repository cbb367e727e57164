package bootstrap

import (
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"sigs.k8s.io/yaml"

	"github.com/pocketkube/pocketkube/internal/golden"
)

var testConfig = Config{
	ServerNode: "server",
	DNS:        &DNS{ServiceIP: DNSServiceIP, Endpoint: net.ParseIP("192.0.2.10"), User: "system:kube-proxy"},
}

// objects returns what Run manages, in a fixed order, for the golden file.
func objects(t *testing.T, client kubernetes.Interface) []byte {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	node, err := client.CoreV1().Nodes().Get(ctx, "server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role, err := client.RbacV1().ClusterRoles().Get(ctx, DNSRoleName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	binding, err := client.RbacV1().ClusterRoleBindings().Get(ctx, DNSRoleName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slice, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, endpointSliceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Fields the fake's tracker fills in, not Run.
	for _, m := range []*metav1.ObjectMeta{&node.ObjectMeta, &role.ObjectMeta, &binding.ObjectMeta, &svc.ObjectMeta, &slice.ObjectMeta} {
		m.ManagedFields = nil
	}
	role.TypeMeta, binding.TypeMeta, svc.TypeMeta, slice.TypeMeta = metav1.TypeMeta{}, metav1.TypeMeta{}, metav1.TypeMeta{}, metav1.TypeMeta{}
	out, err := yaml.Marshal(map[string]any{
		"1 node labels":        node.Labels,
		"2 ClusterRole":        role,
		"3 ClusterRoleBinding": binding,
		"4 Service":            svc,
		"5 EndpointSlice":      slice,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRun pins the objects Run creates and restores against
// testdata/<test name>.yaml (go test -update rewrites them).
func TestRun(t *testing.T) {
	// A Service as kubectl edit could leave it: a port and a label gone.
	editedService := func() *corev1.Service {
		s := desiredService(DNSServiceIP)
		s.Spec.Ports = s.Spec.Ports[:1]
		delete(s.Labels, "k8s-app")
		return s
	}
	tests := []struct {
		name     string
		existing []runtime.Object // besides the Node
		// wantWrites are the verbs of the writes Run makes.
		wantWrites []string
		wantErr    error
	}{
		{
			name:       "first start",
			wantWrites: []string{"create clusterrolebindings", "create clusterroles", "create endpointslices", "create services", "patch nodes"},
		},
		{
			name: "restores what was edited",
			existing: []runtime.Object{
				&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: DNSRoleName}},
				&rbacv1.ClusterRoleBinding{
					ObjectMeta: metav1.ObjectMeta{Name: DNSRoleName},
					RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
				},
				editedService(),
			},
			wantWrites: []string{"create clusterrolebindings", "create endpointslices", "delete clusterrolebindings", "patch nodes", "update clusterroles", "update services"},
		},
		{
			name:     "kube-dns with another ClusterIP",
			existing: []runtime.Object{desiredService(net.ParseIP("10.96.0.53"))},
			wantErr:  ErrClusterIPMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "server", Labels: map[string]string{"kubernetes.io/hostname": "server"}}}
			client := fake.NewClientset(append([]runtime.Object{node}, tt.existing...)...)

			err := Run(ctx, client, testConfig)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Run() = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run(): %v", err)
			}
			if got := writes(client); !slices.Equal(got, tt.wantWrites) {
				t.Errorf("writes = %q, want %q", got, tt.wantWrites)
			}

			golden.Check(t, strings.ReplaceAll(tt.name, " ", "-")+".yaml", objects(t, client))

			// A second start finds everything in place: only the node
			// labels are patched again.
			client.ClearActions()
			if err := Run(ctx, client, testConfig); err != nil {
				t.Fatalf("second Run(): %v", err)
			}
			if got, want := writes(client), []string{"patch nodes"}; !slices.Equal(got, want) {
				t.Errorf("second Run writes = %q, want %q", got, want)
			}
		})
	}
}

// writes returns the verb and resource of each write client saw, sorted:
// Run's parts run concurrently.
func writes(client *fake.Clientset) []string {
	var out []string
	for _, a := range client.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
	}
	slices.Sort(out)
	return out
}

func TestRunRejectsIncompleteDNS(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	err := Run(ctx, fake.NewClientset(), Config{DNS: &DNS{ServiceIP: DNSServiceIP, User: "system:kube-proxy"}})
	if err == nil {
		t.Fatal("Run with a DNS without Endpoint succeeded")
	}
}

func TestRunStorageClass(t *testing.T) {
	// A class of the same name that a user brought, without Run's label.
	foreign := desiredStorageClass("example.com/theirs")
	foreign.Labels = nil
	// Run's class, from which a user took the default annotation.
	notDefault := desiredStorageClass("rancher.io/local-path")
	notDefault.Annotations = nil
	tests := []struct {
		name        string
		existing    []runtime.Object
		provisioner string
		wantWrites  []string
		// wantClass is the class left afterwards; nil for none.
		wantClass *storagev1.StorageClass
	}{
		{name: "first start", provisioner: "rancher.io/local-path", wantWrites: []string{"create clusterrolebindings", "create clusterroles", "create storageclasses", "create validatingadmissionpolicies", "create validatingadmissionpolicybindings"}, wantClass: desiredStorageClass("rancher.io/local-path")},
		{name: "an edited class is left alone", existing: []runtime.Object{notDefault}, provisioner: "rancher.io/local-path", wantWrites: []string{"create clusterrolebindings", "create clusterroles", "create validatingadmissionpolicies", "create validatingadmissionpolicybindings"}, wantClass: notDefault},
		{name: "disabled removes Run's class", existing: []runtime.Object{desiredStorageClass("rancher.io/local-path")}, wantWrites: []string{"delete storageclasses"}},
		{
			name: "disabled withdraws the nodes' access", provisioner: "",
			existing: []runtime.Object{
				&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: NodesLocalPathRoleName}},
				&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: NodesLocalPathRoleName}},
			},
			wantWrites: []string{"delete clusterrolebindings", "delete clusterroles"},
		},
		{name: "disabled keeps a user's class", existing: []runtime.Object{foreign}, wantClass: foreign},
		{name: "disabled without a class", wantWrites: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			client := fake.NewClientset(tt.existing...)
			if err := Run(ctx, client, Config{StorageProvisioner: tt.provisioner}); err != nil {
				t.Fatalf("Run(): %v", err)
			}
			if got := writes(client); !slices.Equal(got, tt.wantWrites) {
				t.Errorf("writes = %q, want %q", got, tt.wantWrites)
			}
			binding, err := client.RbacV1().ClusterRoleBindings().Get(ctx, NodesLocalPathRoleName, metav1.GetOptions{})
			switch {
			case tt.provisioner == "" && err == nil:
				t.Errorf("ClusterRoleBinding %s left in place", NodesLocalPathRoleName)
			case tt.provisioner != "" && err != nil:
				t.Errorf("get ClusterRoleBinding %s: %v", NodesLocalPathRoleName, err)
			case tt.provisioner != "" && (len(binding.Subjects) != 1 || binding.Subjects[0].Kind != rbacv1.GroupKind || binding.Subjects[0].Name != "system:nodes"):
				t.Errorf("ClusterRoleBinding %s subjects = %+v, want group system:nodes", NodesLocalPathRoleName, binding.Subjects)
			}
			sc, err := client.StorageV1().StorageClasses().Get(ctx, DefaultStorageClassName, metav1.GetOptions{})
			switch {
			case tt.wantClass == nil && err == nil:
				t.Errorf("StorageClass %s left in place", sc.Name)
			case tt.wantClass != nil && err != nil:
				t.Errorf("get StorageClass: %v", err)
			case tt.wantClass != nil:
				sc.ManagedFields, sc.ResourceVersion, sc.TypeMeta = nil, "", metav1.TypeMeta{}
				if !equality.Semantic.DeepEqual(sc, tt.wantClass) {
					t.Errorf("StorageClass = %+v, want %+v", sc, tt.wantClass)
				}
			}
		})
	}
}

// TestRunNetworkPolicyRBAC checks that the NetworkPolicy enforcer's user
// is bound to its ClusterRole, and that a second start writes nothing.
func TestRunNetworkPolicyRBAC(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := fake.NewClientset()
	cfg := Config{NetworkPolicyUser: "system:kube-proxy"}
	if err := Run(ctx, client, cfg); err != nil {
		t.Fatalf("Run(): %v", err)
	}
	if got, want := writes(client), []string{"create clusterrolebindings", "create clusterroles"}; !slices.Equal(got, want) {
		t.Errorf("writes = %q, want %q", got, want)
	}
	role, err := client.RbacV1().ClusterRoles().Get(ctx, NetworkPolicyRoleName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "networkpolicies") && slices.Equal(r.Verbs, []string{"list", "watch"})
	}) {
		t.Errorf("ClusterRole %s rules = %+v, want list and watch of networkpolicies", NetworkPolicyRoleName, role.Rules)
	}
	binding, err := client.RbacV1().ClusterRoleBindings().Get(ctx, NetworkPolicyRoleName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(binding.Subjects) != 1 || binding.Subjects[0].Name != "system:kube-proxy" || binding.RoleRef.Name != NetworkPolicyRoleName {
		t.Errorf("ClusterRoleBinding %s = %+v", NetworkPolicyRoleName, binding)
	}
	client.ClearActions()
	if err := Run(ctx, client, cfg); err != nil {
		t.Fatalf("second Run(): %v", err)
	}
	if got := writes(client); len(got) != 0 {
		t.Errorf("second Run writes = %q, want none", got)
	}
}
