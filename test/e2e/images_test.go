//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// The chapter's images, built offline from the host's own files. Their
// names are the ones the chapter's manifests use, so the manifests apply
// unchanged; the agent uses an imported image when the registry cannot
// be reached.
const (
	// curlImage is tutum/curl: busybox, the host's curl and bash with
	// their libraries, and the host's CA bundle.
	curlImage = "tutum/curl"
	// kubectlProxyImage is luksa/kubectl-proxy:1.6.2: busybox, a real
	// kubectl at /kubectl and luksa's /kubectl-proxy.sh as the entrypoint.
	kubectlProxyImage = "luksa/kubectl-proxy:1.6.2"
	// pocketkubeProxyImage is the same ambassador with the pocketkube
	// binary under test: its entrypoint is `pocketkube proxy`, which finds
	// the pod's service account itself (in-cluster config). Its tag is
	// not "latest", so the pull policy is IfNotPresent.
	pocketkubeProxyImage = "pocketkube.test/pocketkube-proxy:e2e"
)

// kubectlProxyScript is the start script of luksa/kubectl-proxy, as the
// chapter gives it (seed 003): kubectl proxy with the pod's service
// account credentials against the kubernetes Service's address.
const kubectlProxyScript = `#!/bin/sh

API_SERVER="https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
CA_CRT="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
TOKEN="$(cat /var/run/secrets/kubernetes.io/serviceaccount/token)"

/kubectl proxy --server="$API_SERVER" --certificate-authority="$CA_CRT" --token="$TOKEN" --accept-paths='^.*'
`

// curlRootfs builds tutum/curl: busybox (sh, env, grep, sleep, cat…),
// /usr/bin/curl and /bin/bash with their libraries (the chapter runs
// `kubectl exec -it curl bash`), the host's CA bundle where Debian's curl
// looks for it (/etc/ssl/certs/ca-certificates.crt, in the CA path
// /etc/ssl/certs), and /etc/nsswitch.conf with `hosts: files dns`, so
// that glibc resolves names with /etc/hosts and then the /etc/resolv.conf
// the node writes. glibc ≥ 2.34 has files and dns built in; the
// libnss_files/libnss_dns stubs are copied for older ones.
func curlRootfs(file string) error {
	r, err := framework.NewRootfsTar(file)
	if err != nil {
		return err
	}
	r.Binary("/usr/bin/curl", "usr/bin/curl")
	r.Binary("/bin/bash", "bin/bash")
	libs, _ := framework.SharedLibraries("/usr/bin/curl")
	libDir := "/lib/x86_64-linux-gnu"
	for _, l := range libs {
		if path.Base(l) == "libc.so.6" {
			libDir = path.Dir(l)
		}
	}
	for _, nss := range []string{"libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2"} {
		if _, err := os.Stat(filepath.Join(libDir, nss)); err == nil {
			r.HostFile(filepath.Join(libDir, nss), path.Join(libDir, nss), 0o644)
		}
	}
	r.Dir("etc/ssl/certs", 0o755)
	r.HostFile("/etc/ssl/certs/ca-certificates.crt", "etc/ssl/certs/ca-certificates.crt", 0o644)
	r.File("etc/nsswitch.conf", 0o644, []byte("passwd: files\ngroup: files\nhosts: files dns\n"))
	r.Busybox()
	return r.Close()
}

// kubectlProxyRootfs builds luksa/kubectl-proxy around the real kubectl
// of minor version v (a static Go binary) at /kubectl.
func kubectlProxyRootfs(file, v string) error {
	r, err := framework.NewRootfsTar(file)
	if err != nil {
		return err
	}
	r.Binary(filepath.Join(framework.KubectlDir, "kubectl."+v), "kubectl")
	r.File("kubectl-proxy.sh", 0o755, []byte(kubectlProxyScript))
	r.Busybox()
	return r.Close()
}

// pocketkubeProxyRootfs builds the pocketkube ambassador: the binary
// under test at /pocketkube with its libraries.
func pocketkubeProxyRootfs(file string) error {
	r, err := framework.NewRootfsTar(file)
	if err != nil {
		return err
	}
	r.Binary(Binary, "pocketkube")
	r.Busybox()
	return r.Close()
}

// chapterImage is one image the chapter's manifests name, as built here.
type chapterImage struct {
	name    string
	build   func(file string) error
	changes []string // `docker import --change` instructions
}

func curlImageSpec() chapterImage { return chapterImage{name: curlImage, build: curlRootfs} }

// kubectlProxyImageSpec has luksa's Dockerfile entrypoint, in its shell form.
func kubectlProxyImageSpec(v string) chapterImage {
	return chapterImage{
		name:    kubectlProxyImage,
		build:   func(file string) error { return kubectlProxyRootfs(file, v) },
		changes: []string{"ENTRYPOINT /kubectl-proxy.sh"},
	}
}

func pocketkubeProxyImageSpec() chapterImage {
	return chapterImage{
		name:    pocketkubeProxyImage,
		build:   pocketkubeProxyRootfs,
		changes: []string{`ENTRYPOINT ["/pocketkube", "proxy"]`},
	}
}

var (
	chapterImagesMu sync.Mutex
	// chapterImported is what each cluster's name was last imported
	// from (key: data dir|name, value: variant).
	chapterImported = map[string]string{}
)

// importChapterImage builds img and imports it into c with `pocketkube
// images import --change …`, unless the same variant is what c has
// under that name already. variant tells builds of one name apart
// (luksa/kubectl-proxy with kubectl 1.27 or 1.33); import a variant only
// while no pod uses the name.
func importChapterImage(t *testing.T, c *framework.Cluster, img chapterImage, variant string) {
	t.Helper()
	key := c.DataDir + "|" + img.name
	chapterImagesMu.Lock()
	defer chapterImagesMu.Unlock()
	if v, ok := chapterImported[key]; ok && v == variant {
		return
	}
	file := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := img.build(file); err != nil {
		t.Fatalf("build rootfs of %s: %v", img.name, err)
	}
	defer os.Remove(file)
	args := []string{"images", "import", "--data-dir", c.DataDir, "--name", img.name}
	for _, ch := range img.changes {
		args = append(args, "--change", ch)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if _, err := framework.Run(ctx, nil, Binary, append(args, file)...); err != nil {
		t.Fatalf("import %s: %v", img.name, err)
	}
	chapterImported[key] = variant
}

// startPrivateRegistry serves the registry on a free loopback port and
// pushes the busybox image to it as e2e/busybox:v1; it returns host:port.
func startPrivateRegistry(t *testing.T, user, pass string) (string, *framework.Registry) {
	t.Helper()
	host, reg := framework.StartRegistry(t, user, pass)
	image := host + "/e2e/busybox:v1"
	framework.PushBusybox(t, image, v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "PUSHED=yes"}}, &authn.Basic{Username: user, Password: pass})
	// The registry really is private: an anonymous pull is refused.
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	var terr *transport.Error
	if _, err := remote.Get(ref); !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous pull from the test registry: %v, want a 401", err)
	}
	return host, reg
}

func TestPullSecrets(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	host, reg := startPrivateRegistry(t, "e2e-user", "e2e-pass")
	image := host + "/e2e/busybox:v1"
	manifest := func(name, image, pullSecrets string) string {
		return podYAML(name, 1, fmt.Sprintf(`  containers:
  - name: main
    image: %s
    imagePullPolicy: Always
    command: ["sh", "-c", "echo pushed=$PUSHED; exec sleep 3600"]
%s`, image, pullSecrets))
	}
	// failsToPull waits for the pull failure and checks kubelet's reasons
	// and messages: ErrImagePull's is the runtime's error (containerd's
	// "failed to pull and unpack image ...", with the registry's refusal);
	// "Failed to pull image ..." is only the event's wording. The back-off
	// message carries the last pull error (image_manager.go pullImage).
	failsToPull := func(t *testing.T, name, secret string) {
		t.Helper()
		// A watch from before the pod exists sees every status write,
		// including the short-lived ErrImagePull.
		wctx, cancel := context.WithTimeout(ctx, framework.PodTimeout)
		defer cancel()
		watcher, err := c.CoreV1().Pods("default").Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if err != nil {
			t.Fatal(err)
		}
		defer watcher.Stop()
		pullSecrets := ""
		if secret != "" {
			pullSecrets = "  imagePullSecrets: [{name: " + secret + "}]\n"
		}
		shared.ApplyPod(t, name, manifest(name, image, pullSecrets))
		var pullMsg string
		var pod *corev1.Pod
		for ev := range watcher.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
				continue
			}
			if w := p.Status.ContainerStatuses[0].State.Waiting; w.Reason == "ErrImagePull" && pullMsg == "" {
				pullMsg = w.Message
			} else if w.Reason == "ImagePullBackOff" {
				pod = p
				break
			}
		}
		if pod == nil {
			t.Fatalf("pod %s never in ImagePullBackOff", name)
		}
		if pullMsg == "" {
			t.Errorf("no ErrImagePull status before ImagePullBackOff, as kubelet writes")
		}
		refused := regexp.MustCompile(`(?i)401|unauthorized|authorization`)
		cause := fmt.Sprintf("failed to pull and unpack image %q: failed to resolve reference %q: ", image, image)
		if pullMsg != "" && (!strings.Contains(pullMsg, cause) || !refused.MatchString(pullMsg) || strings.HasPrefix(pullMsg, "Failed to pull image")) {
			t.Errorf("ErrImagePull message %q\nwant the runtime's error %q... with the registry's refusal, without the event's \"Failed to pull image\" prefix", pullMsg, cause)
		}
		w := pod.Status.ContainerStatuses[0].State.Waiting
		if prefix := fmt.Sprintf("Back-off pulling image %q: ErrImagePull: ", image); !strings.HasPrefix(w.Message, prefix) ||
			!strings.Contains(w.Message, cause) || !refused.MatchString(w.Message) {
			t.Errorf("ImagePullBackOff message %q\nwant %q followed by the pull error", w.Message, prefix)
		}
		// The events kubelet records for a failed pull (they are written
		// asynchronously, so wait for them).
		var out string
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
			out, err = shared.Kubectl(ctx, framework.Newest(), "get", "events", "--field-selector", "involvedObject.name="+name, "-o", "jsonpath={range .items[*]}{.reason}|{.message}{\"\\n\"}{end}")
			return err == nil && strings.Contains(out, fmt.Sprintf("Failed|Failed to pull image %q: ", image)) && strings.Contains(out, cause) &&
				strings.Contains(out, "Failed|Error: ErrImagePull") && strings.Contains(out, fmt.Sprintf("Pulling|Pulling image %q", image)), nil
		})
		if err != nil {
			t.Errorf("events: %q, %v", out, err)
		}
		if pod.Status.Phase != corev1.PodPending {
			t.Errorf("phase %s, want Pending", pod.Status.Phase)
		}
		t.Logf("ErrImagePull message seen: %q; back-off message: %q; events:\n%s", pullMsg, w.Message, out)
	}

	t.Run("no-secret", func(t *testing.T) {
		failsToPull(t, "pull-nosecret", "")
		if reg.Refused.Load() == 0 {
			t.Error("the registry refused nothing: the node never asked it")
		}
	})
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			secret := "regcred-" + framework.Dashed(v)
			if _, err := shared.Kubectl(ctx, v, "create", "secret", "docker-registry", secret,
				"--docker-server="+host, "--docker-username=e2e-user", "--docker-password=e2e-pass", "--docker-email=e2e@example.com"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { shared.Kubectl(context.Background(), v, "delete", "secret", secret) })
			out, err := shared.Kubectl(ctx, v, "get", "secret", secret, "-o", "jsonpath={.type}")
			if err != nil || out != "kubernetes.io/dockerconfigjson" {
				t.Fatalf("secret type %q, %v", out, err)
			}
			before := reg.Authorized.Load()
			name := "pull-secret-" + framework.Dashed(v)
			shared.ApplyPod(t, name, manifest(name, image, "  imagePullSecrets: [{name: "+secret+"}]\n"))
			pod := framework.WaitPod(t, c, "default", name, "Running", framework.Running)
			if reg.Authorized.Load() == before {
				t.Error("the pod runs, but the registry served no authorized request")
			}
			cs := pod.Status.ContainerStatuses[0]
			if cs.Image != image || !strings.HasPrefix(cs.ImageID, host+"/e2e/busybox@sha256:") {
				t.Errorf("status image %q imageID %q", cs.Image, cs.ImageID)
			}
			out, _ = shared.PollKubectl(ctx, v, 10*time.Second, func(out string, _ error) bool { return out != "" }, "logs", name)
			if out != "pushed=yes\n" {
				t.Errorf("logs %q: not the pushed image's environment", out)
			}

			// A wrong password is refused like no secret.
			bad := "badcred-" + framework.Dashed(v)
			if _, err := shared.Kubectl(ctx, v, "create", "secret", "docker-registry", bad,
				"--docker-server="+host, "--docker-username=e2e-user", "--docker-password=wrong"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { shared.Kubectl(context.Background(), v, "delete", "secret", bad) })
			badPod := "pull-badcred-" + framework.Dashed(v)
			failsToPull(t, badPod, bad)
		})
	}
	// The image is on the node now, but pull policy Always still asks the
	// registry, so a pod without credentials still cannot use it.
	t.Run("no-secret-image-present", func(t *testing.T) {
		failsToPull(t, "pull-nosecret-present", "")
	})
}

// TestChapterImages checks the offline images without the network: the
// tutum/curl image runs bash and curl with the host's libraries and CA
// bundle, verifies TLS with the pod's CA and resolves names through
// /etc/hosts, and the images are listed under the chapter's names.
func TestChapterImages(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	importChapterImage(t, shared, curlImageSpec(), "")
	importChapterImage(t, shared, pocketkubeProxyImageSpec(), "")
	importChapterImage(t, shared, kubectlProxyImageSpec(framework.Newest()), framework.Newest())
	out, err := framework.Run(t.Context(), nil, Binary, "images", "list", "--data-dir", shared.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{{"docker.io/tutum/curl", "latest"}, {"docker.io/luksa/kubectl-proxy", "1.6.2"}, {"pocketkube.test/pocketkube-proxy", "e2e"}} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == want[0] && f[1] == want[1] {
				found = true
			}
		}
		if !found {
			t.Errorf("pocketkube images list lacks %s:%s\n%s", want[0], want[1], out)
		}
	}

	v := framework.Newest()
	createChapterPod(t, c, v, "chapter-curl.yaml", "curl")
	pod, err := c.CoreV1().Pods("default").Get(t.Context(), "curl", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// https://kubernetes is the API server, whose certificate the cluster
	// CA signed. curl exits 0 once TLS is verified and an HTTP answer came
	// back, 60 when the certificate is not trusted, and 77 when it cannot
	// read the CA file: so the image's bundle (the host's) is read, is
	// PEM that curl uses, and verifies nothing it should not.
	api := "curl -sS -o /dev/null https://kubernetes/version"
	for _, s := range []struct{ name, script, want string }{
		{"bash", "echo ${BASH_VERSION%%.*}\n", "5\n"},
		{"curl runs", "curl --version | head -1 | cut -d' ' -f1\n", "curl\n"},
		{"TLS with the pod's CA", api + " --cacert " + saDir + "/ca.crt; echo $?\n", "0\n"},
		{"TLS with the default CA bundle", api + "; echo $?\n", "60\n"},
		{"TLS with the bundle as --cacert", api + " --cacert /etc/ssl/certs/ca-certificates.crt; echo $?\n", "60\n"},
		{"TLS with the bundle and the pod's CA", "cat /etc/ssl/certs/ca-certificates.crt " + saDir + "/ca.crt > /tmp/bundle.crt; " + api + " --cacert /tmp/bundle.crt; echo $?\n", "0\n"},
		{"TLS with a missing CA file", api + " --cacert /no/such.crt; echo $?\n", "77\n"},
		// /etc/hosts names the pod itself; glibc reads it per nsswitch.conf.
		// Nothing listens on port 1: curl resolved the name to the pod's IP
		// and connected.
		{"resolve via /etc/hosts", "curl -sS -v http://curl:1/ 2>&1 | grep -o 'Trying [0-9.]*'; echo ${PIPESTATUS[0]}\n", "Trying " + pod.Status.PodIP + "\n7\n"},
	} {
		r := podShell(t, v, "curl", "main", "bash", s.script)
		if r.stdout != s.want {
			t.Errorf("%s: %q gave %q, want %q\n%s", s.name, s.script, r.stdout, s.want, r)
		}
	}
}

// TestImageReimportKeepsRunningContainers is issue 13: importing a tag
// again deleted the root filesystem under the containers that ran the old
// image. The old one must stay until its last container goes, new pods get
// the new one, and `images rm` of an image in use is refused.
func TestImageReimportKeepsRunningContainers(t *testing.T) {
	// Not busybox: other tests run that tag on the shared cluster.
	const name = "busybox-reimport-test"
	ctx := t.Context()
	c := shared.Client(t)
	ns := framework.NewNamespace(t, c, "image-inuse-")
	dir := t.TempDir()
	imageWith := func(marker string) string {
		t.Helper()
		content := filepath.Join(dir, marker)
		if err := os.WriteFile(content, []byte(marker+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tarPath := filepath.Join(dir, marker+".tar")
		if err := framework.BusyboxTar(tarPath, map[string]string{"/" + marker: content}); err != nil {
			t.Fatal(err)
		}
		return tarPath
	}
	images := func(args ...string) (string, error) {
		return framework.Run(ctx, nil, Binary, append([]string{"images", "--data-dir", shared.DataDir}, args...)...)
	}
	t.Cleanup(func() {
		// Leave the shared cluster without the tag once no pod uses it.
		ctx := context.Background()
		for _, pod := range []string{"old", "new"} {
			c.CoreV1().Pods(ns).Delete(ctx, pod, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		}
		wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
			_, err := framework.Run(ctx, nil, Binary, "images", "--data-dir", shared.DataDir, "rm", name)
			return err == nil || strings.Contains(err.Error(), "not found"), nil
		})
	})
	pod := func(podName string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: ns},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{
					Name: "main", Image: name, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"},
				}},
			},
		}
	}

	if err := shared.ImportImage(ctx, name, imageWith("old-marker")); err != nil {
		t.Fatal(err)
	}
	oldRootfs := rootfsOf(t, images, name)
	framework.RunPods(t, c, pod("old"))

	if err := shared.ImportImage(ctx, name, imageWith("new-marker")); err != nil {
		t.Fatal(err)
	}
	if newRootfs := rootfsOf(t, images, name); newRootfs == oldRootfs {
		t.Fatalf("re-import kept image %s", filepath.Base(oldRootfs))
	}
	// The running container keeps its files.
	for _, cmd := range [][]string{{"ls", "/bin/sh"}, {"cat", "/old-marker"}} {
		if out, err := shared.PodExec(ctx, ns, "old", cmd...); err != nil {
			t.Errorf("after re-import, %v in the old pod: %v", cmd, err)
		} else if cmd[0] == "cat" && out != "old-marker\n" {
			t.Errorf("after re-import, /old-marker of the old pod holds %q", out)
		}
	}
	if _, err := os.Stat(oldRootfs); err != nil {
		t.Errorf("root filesystem of the image the old pod runs: %v", err)
	}

	// A new pod gets the new image.
	framework.RunPods(t, c, pod("new"))
	if out, err := shared.PodExec(ctx, ns, "new", "cat", "/new-marker"); err != nil || out != "new-marker\n" {
		t.Errorf("new pod: cat /new-marker = %q, %v", out, err)
	}
	if _, err := shared.PodExec(ctx, ns, "new", "ls", "/old-marker"); err == nil {
		t.Errorf("new pod has /old-marker of the replaced image")
	}

	// `images rm` of the image the new pod runs is refused and removes nothing.
	out, err := images("rm", name)
	if err == nil {
		t.Fatalf("images rm %s of an image in use succeeded: %s", name, out)
	}
	if !strings.Contains(err.Error(), "image is in use by a container") {
		t.Errorf("images rm %s of an image in use: %v; want it to say \"image is in use by a container\"", name, err)
	}
	newRootfs := rootfsOf(t, images, name)
	if out, err := shared.PodExec(ctx, ns, "new", "cat", "/new-marker"); err != nil || out != "new-marker\n" {
		t.Errorf("after refused images rm, new pod: cat /new-marker = %q, %v", out, err)
	}

	// Once the old pod is gone, the replaced image's data goes too.
	deletePodAndWait(t, c, ns, "old")
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, err := os.Stat(oldRootfs)
		return os.IsNotExist(err), nil
	})
	if err != nil {
		t.Errorf("root filesystem %s of the replaced image still there after its last pod went", oldRootfs)
	}
	if _, err := os.Stat(newRootfs); err != nil {
		t.Errorf("root filesystem of the image the new pod runs: %v", err)
	}
}

// rootfsOf returns the directory of the unpacked root filesystem of image
// name, found by its ID in `images list`.
func rootfsOf(t *testing.T, images func(...string) (string, error), name string) string {
	t.Helper()
	out, err := images("list")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "docker.io/library/"+name && f[1] == "latest" {
			matches, _ := filepath.Glob(filepath.Join(shared.DataDir, "images", "rootfs", f[2]+"*"))
			if len(matches) != 1 {
				t.Fatalf("root filesystems of image %s (ID %s): %v", name, f[2], matches)
			}
			return matches[0]
		}
	}
	t.Fatalf("no image %s in images list:\n%s", name, out)
	return ""
}

// deletePodAndWait deletes pod ns/name at once and waits until it is gone.
func deletePodAndWait(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx := t.Context()
	if err := c.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	framework.WaitGone(t, c, ns, name)
}
