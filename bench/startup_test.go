//go:build bench

package bench

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
)

var idle = flag.Duration("idle", 60*time.Second, "BenchmarkIdleRSS: how long the clusters idle before their RSS is read")

// process is a `pocketkube up`, etcd or kube-apiserver started by a
// benchmark, timed from its start.
type process struct {
	cmd   *exec.Cmd
	start time.Time
	url   string // https://HOST:PORT of its API server, if it has one
	log   *os.File
}

func startProcess(b *testing.B, logPath, name string, args ...string) *process {
	b.Helper()
	log, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH=")
	p := &process{cmd: cmd, start: time.Now(), log: log}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	b.Cleanup(func() { p.stop(syscall.SIGKILL, time.Second) })
	return p
}

// stop sends sig and waits up to timeout, then kills; it returns how
// long the exit took.
func (p *process) stop(sig syscall.Signal, timeout time.Duration) time.Duration {
	if p.cmd.ProcessState != nil {
		return 0
	}
	t0 := time.Now()
	p.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-done
	}
	p.log.Close()
	return time.Since(t0)
}

// waitReadyz polls url/readyz until it answers 200 and returns the time
// since the process started, as bench/startup.sh did with curl -k.
func (p *process) waitReadyz(b *testing.B) time.Duration {
	b.Helper()
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(p.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("%s/readyz not 200 after a minute", p.url)
	return 0
}

// waitKubectl runs kubectl with the admin kubeconfig of dataDir until
// args succeed, and returns the time since the process started.
func (p *process) waitKubectl(b *testing.B, dataDir string, args ...string) time.Duration {
	b.Helper()
	kc := filepath.Join(dataDir, "kubeconfig")
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(kc); err == nil {
			if _, err := framework.Run(context.Background(), nil, framework.Kubectl(framework.Newest()), append([]string{"--kubeconfig", kc}, args...)...); err == nil {
				return time.Since(p.start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("kubectl %s never succeeded", strings.Join(args, " "))
	return 0
}

func freePort(b *testing.B, host string) int {
	b.Helper()
	port, err := framework.FreePort(host)
	if err != nil {
		b.Fatal(err)
	}
	return port
}

// startUp runs `pocketkube up` on dataDir, on a free port of host and a
// free kubelet port.
func startUp(b *testing.B, dataDir, host string) *process {
	b.Helper()
	stopPodsCluster()
	listen := net.JoinHostPort(host, strconv.Itoa(freePort(b, host)))
	p := startProcess(b, dataDir+".log", binary, "up", "--data-dir", dataDir, "--listen", listen,
		"--kubelet-port", strconv.Itoa(freePort(b, "")))
	p.url = "https://" + listen
	return p
}

// BenchmarkStartup measures `pocketkube up` as bench/startup.sh did: per
// iteration, a cold start (empty data dir) and a warm start (the same dir
// again), each to /readyz answering 200 and to the first successful
// `kubectl get ns`, and Ctrl-C → exit after each (medians over the
// iterations).
func BenchmarkStartup(b *testing.B) {
	var coldReady, coldNs, warmReady, warmNs, stops []time.Duration
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "data")
		for _, warm := range []bool{false, true} {
			p := startUp(b, dir, "127.0.0.1")
			ready := p.waitReadyz(b)
			getNs := p.waitKubectl(b, dir, "get", "ns")
			stop := p.stop(syscall.SIGINT, 30*time.Second)
			if stop >= 30*time.Second {
				log, _ := os.ReadFile(dir + ".log")
				b.Logf("Ctrl-C did not stop pocketkube within 30 s (warm %v): killed; its last output:\n%s", warm, framework.Tail(string(log), 30))
			}
			stops = append(stops, stop)
			if warm {
				warmReady, warmNs = append(warmReady, ready), append(warmNs, getNs)
			} else {
				coldReady, coldNs = append(coldReady, ready), append(coldNs, getNs)
			}
		}
	}
	noNsPerOp(b)
	sec := func(d []time.Duration) float64 { return quantile(d, 0.5).Seconds() }
	b.ReportMetric(sec(coldReady), "cold-readyz-s")
	b.ReportMetric(sec(coldNs), "cold-getns-s")
	b.ReportMetric(sec(warmReady), "warm-readyz-s")
	b.ReportMetric(sec(warmNs), "warm-getns-s")
	b.ReportMetric(sec(stops), "ctrlc-exit-s")
}

// kubeAPIServer returns a kube-apiserver binary of the embedded version:
// KUBE_APISERVER, or bin/kube-apiserver, built from
// k8s.io/kubernetes/cmd/kube-apiserver if missing.
func kubeAPIServer(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("KUBE_APISERVER"); p != "" {
		return p
	}
	p, err := filepath.Abs("../bin/kube-apiserver")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(p); err == nil {
		return p
	}
	b.Logf("building %s from k8s.io/kubernetes/cmd/kube-apiserver", p)
	if out, err := exec.Command("go", "build", "-ldflags", "-s -w", "-o", p, "k8s.io/kubernetes/cmd/kube-apiserver").CombinedOutput(); err != nil {
		b.Fatalf("build kube-apiserver: %v\n%s", err, out)
	}
	return p
}

// bare is Debian's etcd and a kube-apiserver with the flags pocketkube
// passes, reusing the PKI of a pocketkube data dir.
type bare struct{ etcd, apiserver *process }

func startBare(b *testing.B, kas, etcdDir, pki string) bare {
	b.Helper()
	cport, pport, port := freePort(b, "127.0.0.1"), freePort(b, "127.0.0.1"), freePort(b, "127.0.0.1")
	c, p := fmt.Sprintf("http://127.0.0.1:%d", cport), fmt.Sprintf("http://127.0.0.1:%d", pport)
	etcd := startProcess(b, etcdDir+".log", "etcd", "--name", "bare", "--data-dir", etcdDir,
		"--listen-client-urls", c, "--advertise-client-urls", c,
		"--listen-peer-urls", p, "--initial-advertise-peer-urls", p, "--initial-cluster", "bare="+p)
	apiserver := startProcess(b, etcdDir+".kas.log", kas,
		"--advertise-address=192.0.2.2", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--allow-privileged=true", "--anonymous-auth=true", "--authorization-mode=Node,RBAC",
		"--client-ca-file="+pki+"/ca.crt", "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
		"--etcd-servers="+c,
		"--kubelet-client-certificate="+pki+"/apiserver-kubelet-client.crt", "--kubelet-client-key="+pki+"/apiserver-kubelet-client.key",
		"--proxy-client-cert-file="+pki+"/front-proxy-client.crt", "--proxy-client-key-file="+pki+"/front-proxy-client.key",
		"--requestheader-allowed-names=front-proxy-client", "--requestheader-client-ca-file="+pki+"/front-proxy-ca.crt",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki+"/sa.pub", "--service-account-signing-key-file="+pki+"/sa.key",
		"--service-cluster-ip-range=10.96.0.0/12", "--tls-cert-file="+pki+"/apiserver.crt", "--tls-private-key-file="+pki+"/apiserver.key")
	apiserver.start = etcd.start
	apiserver.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	return bare{etcd, apiserver}
}

// stop stops the API server first, while its storage is still there.
func (x bare) stop() {
	x.apiserver.stop(syscall.SIGTERM, 20*time.Second)
	x.etcd.stop(syscall.SIGTERM, 20*time.Second)
}

// pocketkubePKI makes a data dir with pocketkube's PKI (one cold start).
func pocketkubePKI(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "pk")
	p := startUp(b, dir, "127.0.0.1")
	p.waitReadyz(b)
	p.stop(syscall.SIGINT, 30*time.Second)
	return filepath.Join(dir, "pki")
}

// BenchmarkStartupBare is BenchmarkStartup's peer, as bench/startup.sh
// measured it: Debian's etcd plus a kube-apiserver built from
// k8s.io/kubernetes at the embedded version, with the flags pocketkube
// passes, from the start of etcd to /readyz, cold (new etcd data dir) and
// warm (the same again).
func BenchmarkStartupBare(b *testing.B) {
	kas := kubeAPIServer(b)
	pki := pocketkubePKI(b)
	var cold, warm []time.Duration
	for b.Loop() {
		etcdDir := filepath.Join(b.TempDir(), "etcd")
		for _, w := range []bool{false, true} {
			x := startBare(b, kas, etcdDir, pki)
			d := x.apiserver.waitReadyz(b)
			x.stop()
			if w {
				warm = append(warm, d)
			} else {
				cold = append(cold, d)
			}
		}
	}
	noNsPerOp(b)
	b.ReportMetric(quantile(cold, 0.5).Seconds(), "cold-readyz-s")
	b.ReportMetric(quantile(warm, 0.5).Seconds(), "warm-readyz-s")
}

// BenchmarkIdleRSS reads the RSS of a whole `pocketkube up` (control plane
// and node agent, no pods) and of the bare etcd + kube-apiserver pair
// after both idled -idle (60 s) side by side, as bench/startup.sh did, and
// reports pocketkube's binary size.
func BenchmarkIdleRSS(b *testing.B) {
	kas := kubeAPIServer(b)
	var pk, kasRSS, etcdRSS []float64
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "data")
		p := startUp(b, dir, listenHost)
		p.waitReadyz(b)
		x := startBare(b, kas, filepath.Join(b.TempDir(), "etcd"), filepath.Join(dir, "pki"))
		x.apiserver.waitReadyz(b)
		time.Sleep(*idle)
		for _, r := range []struct {
			pid int
			to  *[]float64
		}{{p.cmd.Process.Pid, &pk}, {x.apiserver.cmd.Process.Pid, &kasRSS}, {x.etcd.cmd.Process.Pid, &etcdRSS}} {
			k, err := rssKiB(r.pid)
			if err != nil {
				b.Fatal(err)
			}
			*r.to = append(*r.to, float64(k)/1024)
		}
		p.stop(syscall.SIGINT, 30*time.Second)
		x.stop()
	}
	noNsPerOp(b)
	b.ReportMetric(mean(pk), "pocketkube-rss-MiB")
	b.ReportMetric(mean(kasRSS)+mean(etcdRSS), "bare-rss-MiB")
	b.ReportMetric(mean(kasRSS), "bare-apiserver-rss-MiB")
	b.ReportMetric(mean(etcdRSS), "bare-etcd-rss-MiB")
	if fi, err := os.Stat(binary); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	}
}
