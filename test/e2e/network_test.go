//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
	"k8s.io/apimachinery/pkg/util/wait"
)

func TestContainersShareLocalhostAndPodsReachEachOther(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	manifest := func(name string) string {
		return podYAML(name, 1, fmt.Sprintf(`  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo served by %s > /www/index.html && exec httpd -f -p 8080 -h /www"]
  - name: client
    image: busybox
    command: ["sleep", "3600"]
`, name))
	}
	shared.ApplyPod(t, "web-a", manifest("web-a"))
	shared.ApplyPod(t, "web-b", manifest("web-b"))
	framework.WaitPod(t, c, "default", "web-a", "Running", framework.Running)
	b := framework.WaitPod(t, c, "default", "web-b", "Running", framework.Running)
	fetch := func(url string) (string, error) {
		return shared.PollKubectl(ctx, framework.Newest(), 10*time.Second, func(_ string, err error) bool { return err == nil },
			"exec", "web-a", "-c", "client", "--", "wget", "-qO-", url)
	}
	if out, err := fetch("http://localhost:8080/"); err != nil || out != "served by web-a\n" {
		t.Errorf("localhost from the other container: %q, %v", out, err)
	}
	if out, err := fetch("http://" + b.Status.PodIP + ":8080/"); err != nil || out != "served by web-b\n" {
		t.Errorf("pod-to-pod: %q, %v", out, err)
	}
	// port-forward through the API server and the kubelet API.
	for _, v := range framework.KubectlVersions {
		t.Run("port-forward-"+v, func(t *testing.T) {
			port, err := FreePort()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(framework.KubectlDir, "kubectl."+v), "--kubeconfig", shared.Kubeconfig, "port-forward", "pod/web-a", fmt.Sprintf("%d:8080", port))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			var body string
			err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
				body, _, err = framework.Curl(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port))
				return err == nil, nil
			})
			if err != nil || body != "served by web-a\n" {
				t.Errorf("port-forward: %q, %v", body, err)
			}
		})
	}
}
