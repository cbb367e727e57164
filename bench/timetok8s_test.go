//go:build bench

package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkTimeToK8s is minikube's "time-to-k8s" for pocketkube, as
// bench/timetok8s.sh measured it: per iteration a cold `up` (a new data
// dir, a curl image built from the host's files imported before `up`, as
// minikube's benchmark has its images cached), timed from the command to
// the API server answering (/readyz with the admin kubeconfig), to an
// application pod Running (created as soon as the default service
// account exists), and to that pod reaching the API server by its cluster
// DNS name (`curl https://kubernetes.default.svc.cluster.local/version`
// with the service account's CA: cluster DNS, the kubernetes Service's
// VIP via kube-proxy and the API server all answering); and Ctrl-C →
// exit. The cluster listens on an address pods can reach.
func BenchmarkTimeToK8s(b *testing.B) {
	image := filepath.Join(b.TempDir(), "curl.tar")
	if err := curlTar(image); err != nil {
		b.Fatal(err)
	}
	const pod = `apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  containers:
  - name: app
    image: ttk/curl
    imagePullPolicy: Never
    command: ["sh", "-c", "until curl -sf --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt https://kubernetes.default.svc.cluster.local/version; do sleep 0.05; done; echo; echo DNS-OK; exec sleep 3600"]`
	var api, app, dns, stop []time.Duration
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "data")
		if _, err := framework.Run(b.Context(), nil, binary, "images", "import", "--data-dir", dir, "--name", "ttk/curl", image); err != nil {
			b.Fatal(err)
		}
		p := startUp(b, dir, listenHost)
		api = append(api, p.waitKubectl(b, dir, "get", "--raw", "/readyz"))
		p.waitKubectl(b, dir, "get", "serviceaccount", "default")
		kc := []string{"--kubeconfig", filepath.Join(dir, "kubeconfig")}
		if _, err := framework.Run(b.Context(), strings.NewReader(pod), framework.Kubectl(framework.Newest()), append(kc, "apply", "-f", "-")...); err != nil {
			b.Fatal(err)
		}
		app = append(app, pollKubectl(b, p, kc, func(out string) bool { return out == "Running" }, "get", "pod", "app", "-o", "jsonpath={.status.phase}"))
		dns = append(dns, pollKubectl(b, p, kc, func(out string) bool { return strings.Contains(out, "DNS-OK") }, "logs", "app"))
		stop = append(stop, p.stop(syscall.SIGINT, 30*time.Second))
		if err := removeUnlessMounted(dir); err != nil {
			b.Error(err)
		}
	}
	noNsPerOp(b)
	b.ReportMetric(quantile(api, 0.5).Seconds(), "api-s")
	b.ReportMetric(quantile(app, 0.5).Seconds(), "app-running-s")
	b.ReportMetric(quantile(dns, 0.5).Seconds(), "app-dns-api-s")
	b.ReportMetric(quantile(stop, 0.5).Seconds(), "ctrlc-exit-s")
}

// pollKubectl runs kubectl args every 50 ms until ok(stdout), and returns
// the time since p started.
func pollKubectl(b *testing.B, p *process, kc []string, ok func(string) bool, args ...string) time.Duration {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := framework.Run(b.Context(), nil, framework.Kubectl(framework.Newest()), append(kc, args...)...)
		if err == nil && ok(out) {
			return time.Since(p.start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("kubectl %s: not there after 2 minutes", strings.Join(args, " "))
	return 0
}

var lddPath = regexp.MustCompile(`/\S+`)

// curlTar writes the busybox image plus the host's curl, its libraries,
// the NSS modules for DNS, the CA bundle and an nsswitch.conf.
func curlTar(path string) error {
	extra := map[string]string{"usr/bin/curl": "/usr/bin/curl", "etc/ssl/certs/ca-certificates.crt": "/etc/ssl/certs/ca-certificates.crt"}
	out, err := exec.Command("ldd", "/usr/bin/curl").Output()
	if err != nil {
		return err
	}
	libs := lddPath.FindAllString(string(out), -1)
	libs = append(libs, "/lib/x86_64-linux-gnu/libnss_dns.so.2", "/lib/x86_64-linux-gnu/libnss_files.so.2", "/lib/x86_64-linux-gnu/libresolv.so.2")
	for _, l := range libs {
		if _, err := os.Stat(l); err == nil {
			extra[strings.TrimPrefix(l, "/")] = l
		}
	}
	nss := filepath.Join(filepath.Dir(path), "nsswitch.conf")
	if err := os.WriteFile(nss, []byte("hosts: files dns\n"), 0o644); err != nil {
		return err
	}
	extra["etc/nsswitch.conf"] = nss
	return framework.BusyboxTar(path, extra)
}
