//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pocketkube/pocketkube/test/framework"
	corev1 "k8s.io/api/core/v1"
)

// capEff reads CapEff from the test process's /proc/self/status: a
// privileged container gets every capability the runtime holds, as
// containerd's privileged containers do.
func capEff(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapEff:\s*([0-9a-f]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no CapEff in /proc/self/status")
	}
	return string(m[1])
}

func TestSecurityContext(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	shared.ApplyPod(t, "secctx", podYAML("secctx", 1, `  containers:
  - name: default
    image: busybox
    command: ["sleep", "3600"]
  - name: user
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {runAsUser: 1000, runAsGroup: 3000}
  - name: nonroot-uid
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {runAsNonRoot: true, runAsUser: 1000}
  - name: readonly
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {readOnlyRootFilesystem: true}
  - name: caps
    image: busybox
    command: ["sleep", "3600"]
    securityContext:
      capabilities: {drop: [ALL], add: [NET_ADMIN]}
  - name: nonewprivs
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {allowPrivilegeEscalation: false}
`))
	// sysfs is mounted once per network namespace: the first container
	// of a pod to mount it decides whether it is read-only for all, so
	// the privileged container has a pod of its own.
	shared.ApplyPod(t, "secctx-priv", podYAML("secctx-priv", 1, `  containers:
  - name: privileged
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {privileged: true}
`))
	framework.WaitPod(t, c, "default", "secctx", "Running", framework.Running)
	framework.WaitPod(t, c, "default", "secctx-priv", "Running", framework.Running)
	hostCaps := capEff(t)
	// The status lines of the container's own process (grep's, which
	// inherits the container's set).
	status := `grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status`
	// Setting lo's MTU needs CAP_NET_ADMIN in the pod's network namespace.
	netAdmin := `ip link set lo mtu 65536 2>&1 && echo net-admin-ok`
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			for _, tc := range []struct {
				pod            string // "secctx" when empty
				container, cmd string
				want           string // stdout
				wantErr        bool
				stderr         string // a substring of stderr
			}{
				{container: "default", cmd: "id", want: "uid=0(root) gid=0(root) groups=0(root)\n"},
				{container: "default", cmd: status, want: "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\n"},
				{container: "default", cmd: netAdmin, want: "ip: SIOCSIFMTU: Operation not permitted\n", wantErr: true},
				{container: "default", cmd: "grep ' /sys ' /proc/mounts", want: "sysfs /sys sysfs ro,nosuid,nodev,noexec,relatime 0 0\n"},
				{container: "default", cmd: "echo x > /probe && cat /probe", want: "x\n"},
				{container: "user", cmd: "id", want: "uid=1000 gid=3000 groups=3000\n"},
				{container: "user", cmd: "touch /root/x", wantErr: true, stderr: "Permission denied"},
				{container: "nonroot-uid", cmd: "id -u", want: "1000\n"},
				{container: "readonly", cmd: "touch /x", wantErr: true, stderr: "touch: /x: Read-only file system"},
				{container: "readonly", cmd: "touch /tmp/x", wantErr: true, stderr: "touch: /tmp/x: Read-only file system"},
				{container: "readonly", cmd: "echo ok > /dev/shm/x && cat /dev/shm/x", want: "ok\n"},
				{container: "caps", cmd: status, want: "CapEff:\t0000000000001000\nCapBnd:\t0000000000001000\nNoNewPrivs:\t0\n"},
				{container: "caps", cmd: netAdmin, want: "net-admin-ok\n"},
				{container: "caps", cmd: "chown 1:1 /tmp", wantErr: true, stderr: "Operation not permitted"},
				{pod: "secctx-priv", container: "privileged", cmd: "grep -E '^CapEff:' /proc/self/status", want: "CapEff:\t" + hostCaps + "\n"},
				{pod: "secctx-priv", container: "privileged", cmd: netAdmin, want: "net-admin-ok\n"},
				{pod: "secctx-priv", container: "privileged", cmd: "grep ' /sys ' /proc/mounts", want: "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"},
				// containerd gives a privileged container the host's devices
				// (oci.WithHostDevices).
				{pod: "secctx-priv", container: "privileged", cmd: "test -c /dev/kmsg && test -c /dev/loop-control && echo host-devices", want: "host-devices\n"},
				{container: "default", cmd: "test -e /dev/kmsg || echo no-kmsg", want: "no-kmsg\n"},
				{container: "nonewprivs", cmd: status, want: "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\n"},
			} {
				if tc.pod == "" {
					tc.pod = "secctx"
				}
				out, errOut, err := kexec(ctx, v, tc.pod, tc.container, tc.cmd)
				if (err != nil) != tc.wantErr || (tc.want != "" || !tc.wantErr) && out != tc.want || !strings.Contains(errOut, tc.stderr) {
					t.Errorf("%s: %s: stdout %q, stderr %q, err %v; want stdout %q, stderr containing %q, error %v",
						tc.container, tc.cmd, out, errOut, err, tc.want, tc.stderr, tc.wantErr)
				}
			}
		})
	}

	// runAsNonRoot without a runAsUser on an image that runs as root, and
	// with runAsUser 0: kubelet's verifyRunAsNonRoot messages, as
	// CreateContainerConfigError.
	manifest := func(name, sc string) string {
		return podYAML(name, 1, `  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    securityContext: `+sc+"\n")
	}
	for _, tc := range []struct{ name, sc, format string }{
		{"nonroot-image-root", "{runAsNonRoot: true}", "container has runAsNonRoot and image will run as root (pod: %q, container: main)"},
		{"nonroot-uid-0", "{runAsNonRoot: true, runAsUser: 0}", "container's runAsUser breaks non-root policy (pod: %q, container: main)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shared.ApplyPod(t, tc.name, manifest(tc.name, tc.sc))
			pod := framework.WaitPod(t, c, "default", tc.name, "waiting with CreateContainerConfigError", func(p *corev1.Pod) bool {
				return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
					p.Status.ContainerStatuses[0].State.Waiting.Reason == "CreateContainerConfigError"
			})
			want := fmt.Sprintf(tc.format, fmt.Sprintf("%s_default(%s)", tc.name, pod.UID))
			if got := pod.Status.ContainerStatuses[0].State.Waiting.Message; got != want {
				t.Errorf("message %q\nwant    %q", got, want)
			}
			if pod.Status.Phase != corev1.PodPending {
				t.Errorf("phase %s, want Pending", pod.Status.Phase)
			}
			for _, v := range framework.KubectlVersions {
				out, err := shared.Kubectl(ctx, v, "get", "pod", tc.name, "--no-headers")
				if f := strings.Fields(out); err != nil || len(f) < 3 || f[2] != "CreateContainerConfigError" {
					t.Errorf("kubectl %s get pod: %q, %v", v, out, err)
				}
			}
		})
	}
}
