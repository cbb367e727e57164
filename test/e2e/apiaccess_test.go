//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Walkthrough sections 4 and 5: the chapter's pods talk to the API server
// from inside, through the kubernetes Service (cluster DNS and the service
// VIP) by hand with curl, then through an ambassador container running
// kubectl proxy or pocketkube proxy. The pods are the seed manifests in
// testdata/chapter-*.yaml, applied unchanged; the images are built from
// the host's files (images_test.go).

// saDir is where every container finds its service account's files.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// shellResult is what one `kubectl exec` session gave.
type shellResult struct {
	stdout, stderr string
	code           int // the exit code kubectl passes on from the command
}

func (r shellResult) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// podShell is the chapter's `kubectl exec -it POD -c CONTAINER bash`
// followed by typed lines: it runs shell in the container with `kubectl
// exec -i` (there is no terminal here) and writes script to its stdin.
func podShell(t *testing.T, v, pod, container, shell, script string) shellResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(framework.KubectlDir, "kubectl."+v), "--kubeconfig", shared.Kubeconfig,
		"exec", "-i", pod, "-c", container, "--", shell)
	cmd.Stdin = strings.NewReader(script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := shellResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("kubectl %s exec %s -c %s: %v\n%s", v, pod, container, err, r)
	}
	return r
}

// createChapterPod runs `kubectl create -f testdata/FILE`, checks kubectl's
// answer, deletes the pod when the test ends and waits until it is Running
// with every container ready.
func createChapterPod(t *testing.T, c kubernetes.Interface, v, file, name string) {
	t.Helper()
	framework.WaitServiceAccount(t, c, "default")
	out, err := shared.Kubectl(t.Context(), v, "create", "-f", filepath.Join("testdata", file))
	t.Cleanup(func() {
		c.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		framework.WaitGone(t, c, "default", name)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "pod/" + name + " created\n"; out != want {
		t.Errorf("kubectl create -f %s: %q, want %q", file, out, want)
	}
	framework.WaitPod(t, c, "default", name, "running and ready", framework.Running)
}

// permissiveBinding is the chapter's `kubectl create clusterrolebinding
// permissive-binding --clusterrole=cluster-admin
// --group=system:serviceaccounts`. Every service account of the shared
// cluster is cluster-admin while it exists, so the binding is deleted
// (and gone) when the test ends.
func permissiveBinding(t *testing.T, c kubernetes.Interface, v string) {
	t.Helper()
	out, err := shared.Kubectl(t.Context(), v, "create", "clusterrolebinding", "permissive-binding",
		"--clusterrole=cluster-admin", "--group=system:serviceaccounts")
	t.Cleanup(func() {
		ctx := context.Background()
		c.RbacV1().ClusterRoleBindings().Delete(ctx, "permissive-binding", metav1.DeleteOptions{})
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
			_, err := c.RbacV1().ClusterRoleBindings().Get(ctx, "permissive-binding", metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Errorf("clusterrolebinding permissive-binding not deleted: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "clusterrolebinding.rbac.authorization.k8s.io/permissive-binding created\n"; out != want {
		t.Errorf("kubectl create clusterrolebinding: %q, want %q", out, want)
	}
}

// hostAnswer is the API server's answer to the same request made from
// the host with curl, to the --listen address: what the pod must get
// through the kubernetes Service, byte for byte.
func hostAnswer(t *testing.T, ca, token, path string) string {
	t.Helper()
	args := []string{"--cacert", ca}
	if token != "" {
		args = append(args, "-H", "Authorization: Bearer "+token)
	}
	body, _, err := framework.Curl(t.Context(), append(args, shared.Server+path)...)
	if err != nil {
		t.Fatalf("curl %s from the host: %v", path, err)
	}
	return body
}

// curlNetworkFailure says why an in-pod curl that should have reached the
// API server did not, when its exit code is one of curl's network
// errors, or "".
func curlNetworkFailure(r shellResult) string {
	switch r.code {
	case 6:
		return "name not resolved (cluster DNS)"
	case 7:
		return "connection refused or no route (service VIP)"
	case 28:
		return "timed out (service VIP or cluster DNS)"
	}
	return ""
}

const (
	anonymousForbidden = `"message": "forbidden: User \"system:anonymous\" cannot get path \"/\""`
	defaultSAForbidden = `"message": "forbidden: User \"system:serviceaccount:default:default\" cannot get path \"/\""`
	podsForbidden      = `"message": "pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""`
)

// TestInPodAPIServer is walkthrough section 4, once per kubectl: the curl
// pod finds the API server through the kubernetes Service, verifies it
// with the service account's CA, is anonymous without the token, is the
// default service account with it and forbidden to list pods, and gets
// the PodList once permissive-binding exists.
func TestInPodAPIServer(t *testing.T) {
	c := shared.Client(t)
	importChapterImage(t, shared, curlImageSpec(), "")
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) { inPodAPIServer(t, c, v) })
	}
}

func inPodAPIServer(t *testing.T, c kubernetes.Interface, v string) {
	createChapterPod(t, c, v, "chapter-curl.yaml", "curl")
	sh := func(script string) shellResult { return podShell(t, v, "curl", "main", "bash", script) }

	// The kubernetes Service, from the host and in the environment.
	out, err := shared.Kubectl(t.Context(), v, "get", "svc")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got, want := strings.Fields(lines[0]), []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"}; !slices.Equal(got, want) {
		t.Errorf("kubectl get svc header %q, want %q", got, want)
	}
	var svc []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) == 6 && f[0] == "kubernetes" {
			svc = f[:5]
		}
	}
	if want := []string{"kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"}; !slices.Equal(svc, want) {
		t.Errorf("kubectl get svc: kubernetes is %q, want %q\n%s", svc, want, out)
	}
	r := sh("env | grep KUBERNETES_SERVICE\n")
	env := strings.Split(strings.TrimSpace(r.stdout), "\n")
	slices.Sort(env)
	if want := []string{"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_SERVICE_PORT_HTTPS=443"}; r.code != 0 || !slices.Equal(env, want) {
		t.Errorf("env | grep KUBERNETES_SERVICE: %q, want %q\n%s", env, want, r)
	}

	// The service account's files.
	r = sh("ls " + saDir + "/\n")
	if got, want := strings.Fields(r.stdout), []string{"ca.crt", "namespace", "token"}; r.code != 0 || !slices.Equal(got, want) {
		t.Errorf("ls %s/: %q, want %q\n%s", saDir, got, want, r)
	}
	ns := sh("cat " + saDir + "/namespace\n")
	if ns.code != 0 || ns.stdout != "default" {
		t.Errorf("namespace file: %q, want %q\n%s", ns.stdout, "default", ns)
	}
	ca, token := sh("cat "+saDir+"/ca.crt\n"), sh("cat "+saDir+"/token\n")
	if ca.code != 0 || !strings.HasPrefix(ca.stdout, "-----BEGIN CERTIFICATE-----") || token.code != 0 || strings.Count(token.stdout, ".") != 2 {
		t.Fatalf("ca.crt or token unreadable or malformed:\n%s\n%s", ca, token)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte(ca.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	// What the API server answers, asked from the host with the pod's
	// credentials; this also checks that the token and CA are the
	// cluster's.
	anonymous := hostAnswer(t, caFile, "", "/")
	saRoot := hostAnswer(t, caFile, token.stdout, "/")
	saPods := hostAnswer(t, caFile, token.stdout, "/api/v1/namespaces/default/pods")
	for _, a := range []struct{ body, want string }{{anonymous, anonymousForbidden}, {saRoot, defaultSAForbidden}, {saPods, podsForbidden}} {
		if !strings.Contains(a.body, a.want) || !strings.Contains(a.body, `"code": 403`) {
			t.Errorf("from the host: %s\nwant a 403 Status with %s", a.body, a.want)
		}
	}

	// The host's curl, with the same CA bundle as the image's, refuses
	// the API server's certificate as the chapter shows.
	const untrusted = "curl: (60) SSL certificate problem: unable to get local issuer certificate"
	_, _, err = framework.Curl(t.Context(), shared.Server+"/")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 60 || !strings.Contains(err.Error(), untrusted) {
		t.Errorf("curl %s/ from the host: %v; want exit 60 with %q", shared.Server, err, untrusted)
	}

	// `curl https://kubernetes`: the name resolves (cluster DNS, search
	// path default.svc.cluster.local), the VIP leads to the API server,
	// and its certificate is not signed by a CA of the image's bundle.
	r = sh("curl https://kubernetes\n")
	if why := curlNetworkFailure(r); why != "" {
		t.Fatalf("curl https://kubernetes did not reach the API server: %s\n%s", why, r)
	}
	if r.code != 60 || !strings.Contains(r.stderr, untrusted) {
		t.Errorf("curl https://kubernetes: want exit 60 with %q\n%s", untrusted, r)
	}

	// With the CA the server is verified: anonymous, then the default
	// service account, forbidden by RBAC.
	steps := []struct{ name, script, want, contains string }{
		{"--cacert", "curl --cacert " + saDir + "/ca.crt https://kubernetes\n", anonymous, anonymousForbidden},
		{"CURL_CA_BUNDLE", "export CURL_CA_BUNDLE=" + saDir + "/ca.crt\ncurl https://kubernetes\n", anonymous, anonymousForbidden},
		{"token", "export CURL_CA_BUNDLE=" + saDir + "/ca.crt\nTOKEN=$(cat " + saDir + "/token)\n" +
			`curl -H "Authorization: Bearer $TOKEN" https://kubernetes` + "\n", saRoot, defaultSAForbidden},
		{"token pods", podsScript, saPods, podsForbidden},
	}
	for _, s := range steps {
		r := sh(s.script)
		if why := curlNetworkFailure(r); why != "" {
			t.Fatalf("%s: did not reach the API server: %s\n%s", s.name, why, r)
		}
		if r.code != 0 || r.stdout != s.want || !strings.Contains(r.stdout, s.contains) {
			t.Errorf("%s: %q\nwant the API server's\n%s\n%s", s.name, s.script, s.want, r)
		}
	}

	// permissive-binding: the same request lists the pods.
	permissiveBinding(t, c, v)
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		r = sh(podsScript)
		return r.code == 0 && strings.Contains(r.stdout, `"kind": "PodList"`), nil
	})
	if err != nil {
		t.Fatalf("after permissive-binding, GET /api/v1/namespaces/$NS/pods never returned a PodList: %v\n%s", err, r)
	}
	if !strings.Contains(r.stdout, `"name": "curl",`) || !strings.Contains(r.stdout, `"apiVersion": "v1"`) {
		t.Errorf("PodList without the curl pod:\n%s", r.stdout)
	}
	r = sh("export CURL_CA_BUNDLE=" + saDir + "/ca.crt\nTOKEN=$(cat " + saDir + "/token)\nNS=$(cat " + saDir + "/namespace)\n" +
		`curl -H "Authorization: Bearer $TOKEN" https://kubernetes/api/v1/namespaces/$NS/pods/curl` + "\n")
	if r.code != 0 || !strings.Contains(r.stdout, `"kind": "Pod"`) || !strings.Contains(r.stdout, `"name": "curl"`) {
		t.Errorf("GET pods/curl with the token: want the Pod\n%s", r)
	}
	r = sh("export CURL_CA_BUNDLE=" + saDir + "/ca.crt\nTOKEN=$(cat " + saDir + "/token)\n" +
		`curl -H "Authorization: Bearer $TOKEN" https://kubernetes` + "\n")
	if want := rootPaths(t, v); r.code != 0 || strings.TrimSpace(r.stdout) != strings.TrimSpace(want) {
		t.Errorf("GET / with the token: want the paths list (kubectl get --raw /)\n%s", r)
	}
}

// podsScript is the chapter's request for the pod's namespace's pods with
// the service account's token.
const podsScript = "export CURL_CA_BUNDLE=" + saDir + "/ca.crt\n" +
	"TOKEN=$(cat " + saDir + "/token)\n" +
	"NS=$(cat " + saDir + "/namespace)\n" +
	`curl -H "Authorization: Bearer $TOKEN" https://kubernetes/api/v1/namespaces/$NS/pods` + "\n"

// rootPaths is the API server's paths list (GET /) as kubectl gets it,
// checked for the lines the chapter shows.
func rootPaths(t *testing.T, v string) string {
	t.Helper()
	out, err := shared.Kubectl(t.Context(), v, "get", "--raw", "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"paths": [`, `"/api",`, `"/api/v1",`, `"/apis",`, `"/apis/batch/v1",`} {
		if !strings.Contains(out, want) {
			t.Fatalf("kubectl get --raw / lacks %s:\n%s", want, out)
		}
	}
	return out
}

// TestAmbassador is walkthrough section 5, once per kubectl: the
// curl-with-ambassador pod, whose ambassador runs kubectl proxy (the
// chapter's luksa/kubectl-proxy:1.6.2, here with that same kubectl
// version inside) or pocketkube proxy, answers `curl localhost:8001` in
// the main container with the API server's answers, made with the pod's
// service account.
func TestAmbassador(t *testing.T) {
	c := shared.Client(t)
	importChapterImage(t, shared, curlImageSpec(), "")
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-proxy/kubectl-"+v, func(t *testing.T) {
			importChapterImage(t, shared, kubectlProxyImageSpec(v), v)
			ambassador(t, c, v, "chapter-curl-with-ambassador.yaml", func(t *testing.T) {
				r := podShell(t, v, "curl-with-ambassador", "ambassador", "sh", "/kubectl version --client -o json\n")
				if want := `"gitVersion": "v` + v + `.`; r.code != 0 || !strings.Contains(r.stdout, want) {
					t.Errorf("/kubectl version in the ambassador: want %s\n%s", want, r)
				}
			})
		})
		t.Run("pocketkube-proxy/kubectl-"+v, func(t *testing.T) {
			importChapterImage(t, shared, pocketkubeProxyImageSpec(), "")
			want, err := framework.Run(t.Context(), nil, Binary, "version")
			if err != nil {
				t.Fatal(err)
			}
			ambassador(t, c, v, "chapter-curl-with-pocketkube-ambassador.yaml", func(t *testing.T) {
				r := podShell(t, v, "curl-with-ambassador", "ambassador", "sh", "/pocketkube version\n")
				if r.code != 0 || r.stdout != want {
					t.Errorf("/pocketkube version in the ambassador: want %q\n%s", want, r)
				}
			})
		})
	}
}

// ambassador runs section 5 with the pod in file; image checks what is
// in the ambassador's image.
func ambassador(t *testing.T, c kubernetes.Interface, v, file string, image func(*testing.T)) {
	const pod = "curl-with-ambassador"
	createChapterPod(t, c, v, file, pod)
	image(t)
	// kubectl proxy says where it serves once it listens; it reaches the
	// API server only when asked.
	logs, err := shared.PollKubectl(t.Context(), v, 30*time.Second, func(logs string, _ error) bool { return logs != "" }, "logs", pod, "-c", "ambassador")
	if want := "Starting to serve on 127.0.0.1:8001\n"; err != nil || logs != want {
		t.Errorf("ambassador logs %q, want %q", logs, want)
	}

	sh := func(script string) shellResult { return podShell(t, v, pod, "main", "bash", script) }
	// Before permissive-binding the proxy's requests are the default
	// service account's: RBAC lets it see neither / nor the pods.
	r := sh("curl localhost:8001\n")
	if r.code != 0 {
		t.Fatalf("curl localhost:8001: the ambassador did not answer\n%s", r)
	}
	if !strings.Contains(r.stdout, `"kind": "Status"`) {
		// kubectl proxy answers 502 with the error text when it cannot
		// reach or verify the API server at $KUBERNETES_SERVICE_HOST.
		t.Fatalf("curl localhost:8001: the ambassador did not reach the API server through the kubernetes Service (%s)\n%s", "https://10.96.0.1:443", r)
	}
	if !strings.Contains(r.stdout, defaultSAForbidden) {
		t.Fatalf("curl localhost:8001 before permissive-binding: want the API server's 403 for the default service account (%s)\n%s", defaultSAForbidden, r)
	}

	permissiveBinding(t, c, v)
	want := rootPaths(t, v)
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		r = sh("curl localhost:8001\n")
		return r.code == 0 && strings.TrimSpace(r.stdout) == strings.TrimSpace(want), nil
	})
	if err != nil {
		t.Errorf("curl localhost:8001: want the paths list (kubectl get --raw /): %v\n%s", err, r)
	}
	r = sh("curl localhost:8001/api/v1/namespaces/default/pods/" + pod + "\n")
	if r.code != 0 || !strings.Contains(r.stdout, `"kind": "Pod"`) || !strings.Contains(r.stdout, `"name": "`+pod+`"`) {
		t.Errorf("curl localhost:8001/api/v1/namespaces/default/pods/%s: want the Pod\n%s", pod, r)
	}
}
