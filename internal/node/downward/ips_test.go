package downward

import (
	"fmt"
	"net"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pocketkube/pocketkube/internal/golden"
)

func parseIPs(s ...string) []net.IP {
	var ips []net.IP
	for _, x := range s {
		ips = append(ips, net.ParseIP(x))
	}
	return ips
}

// TestIPsGolden pins status.podIP(s) and status.hostIP(s) for single- and
// dual-stack nodes: one IP per family, the node's primary family first,
// comma-joined, each IP in Go's canonical form. The pod IPs are given in
// the order CNI returned them.
func TestIPsGolden(t *testing.T) {
	var b strings.Builder
	for _, tc := range []struct {
		name    string
		nodeIPs []net.IP
		podIPs  []net.IP
	}{
		{name: "ipv4", nodeIPs: parseIPs("192.0.2.2"), podIPs: parseIPs("10.244.0.5")},
		{name: "ipv6", nodeIPs: parseIPs("2001:db8::2"), podIPs: parseIPs("fd00::5")},
		{name: "dual-stack-ipv4-primary", nodeIPs: parseIPs("192.0.2.2", "2001:db8::2"), podIPs: parseIPs("fd00::5", "10.244.0.5")},
		{name: "dual-stack-ipv6-primary", nodeIPs: parseIPs("2001:db8::2", "192.0.2.2"), podIPs: parseIPs("10.244.0.5", "fd00::5")},
		{name: "several-per-family", nodeIPs: parseIPs("192.0.2.2", "192.0.2.3", "2001:db8::2", "2001:db8::3"), podIPs: parseIPs("10.244.0.5", "fd00::5", "10.244.0.6", "fd00::6")},
		{name: "ipv6-node-ipv4-pod", nodeIPs: parseIPs("2001:db8::2"), podIPs: parseIPs("10.244.0.5")},
		{name: "ipv4-mapped-and-long-form", nodeIPs: parseIPs("192.0.2.2"), podIPs: parseIPs("FD00:0:0:0::0005", "::ffff:10.244.0.7")},
		{name: "no-pod-ip", nodeIPs: parseIPs("192.0.2.2"), podIPs: nil},
	} {
		primaryIPv6 := tc.nodeIPs[0].To4() == nil
		podIPs, hostIPs := SortIPs(tc.podIPs, primaryIPv6), SortIPs(tc.nodeIPs, primaryIPv6)
		fmt.Fprintf(&b, "# %s\n", tc.name)
		for _, path := range []string{"status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs"} {
			v, err := fieldValue(&v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}, &v1.Pod{}, podIPs, hostIPs)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.name, path, err)
			}
			fmt.Fprintf(&b, "%s=%s\n", path, v)
		}
	}
	golden.Check(t, "ips.golden", []byte(b.String()))
}

func TestFieldValue(t *testing.T) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "downward", UID: "0b9e4d5c-1f1e-4c5e-9a57-7f6c1b0d2e3f", Labels: map[string]string{"app": "web"}},
		Spec:       v1.PodSpec{NodeName: "node1", ServiceAccountName: "default", RestartPolicy: v1.RestartPolicyAlways},
		Status:     v1.PodStatus{Phase: v1.PodRunning},
	}
	for _, tc := range []struct {
		name, apiVersion, path string
		hostIPs                []string
		want, wantErr          string
	}{
		{name: "name", path: "metadata.name", want: "downward"},
		{name: "namespace", path: "metadata.namespace", want: "default"},
		{name: "uid", path: "metadata.uid", want: "0b9e4d5c-1f1e-4c5e-9a57-7f6c1b0d2e3f"},
		{name: "node name", path: "spec.nodeName", want: "node1"},
		{name: "legacy spec.host", path: "spec.host", want: "node1"},
		{name: "service account", path: "spec.serviceAccountName", want: "default"},
		{name: "label subscript", path: "metadata.labels['app']", want: "web"},
		{name: "other api version", apiVersion: "v2", path: "metadata.name", wantErr: "unsupported pod version: v2"},
		{name: "empty api version", apiVersion: "-", path: "metadata.name", wantErr: "unsupported pod version: "},
		{name: "unknown field", path: "spec.containers", wantErr: "field label not supported: spec.containers"},
		{name: "bad subscript", path: "metadata.name['x']", wantErr: "field label does not support subscript: metadata.name['x']"},
		// Convertible but not extractable: the API server refuses these in
		// env, and kubelet would fail the same way.
		{name: "status.phase", path: "status.phase", wantErr: "unsupported fieldPath: status.phase"},
		{name: "invalid label key", path: "metadata.labels['a b']", wantErr: "invalid key subscript in metadata.labels['a b']: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"},
		{name: "host IP unknown", path: "status.hostIP", wantErr: "host IP unknown; known addresses: []"},
		{name: "host IPs unknown", path: "status.hostIPs", wantErr: "host IP unknown; known addresses: []"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version := tc.apiVersion
			switch version {
			case "":
				version = "v1"
			case "-":
				version = ""
			}
			got, err := fieldValue(&v1.ObjectFieldSelector{APIVersion: version, FieldPath: tc.path}, pod, nil, tc.hostIPs)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("= %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
