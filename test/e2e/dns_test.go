//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Cluster DNS (issue 6, section 3) as pods see it: the Kubernetes DNS
// specification's records asked from a pod straight at 10.96.0.10 with
// bench/dns (exact rcode, AA bit and records), names resolved through the
// pod's resolv.conf by glibc (curl), the resolv.conf kubelet would write
// for each dnsPolicy, and the service-account faults: admission refuses a
// pod whose service account does not exist, and a deleted pod's token
// stops authenticating.

// dnsImage is busybox plus bench/dns at /bin/dns; its tag is not
// "latest", so the pull policy is IfNotPresent and the imported image is
// used.
const dnsImage = "pocketkube.test/dns:e2e"

// clusterDNSIP is the kube-dns Service's ClusterIP, kubeadm's choice.
const clusterDNSIP = "10.96.0.10"

var dnsImageImport struct {
	once sync.Once
	err  error
}

// importDNSImage builds bench/dns statically and imports busybox with it
// at /bin/dns into the shared cluster, once per test binary.
func importDNSImage(t *testing.T) {
	t.Helper()
	dnsImageImport.once.Do(func() {
		dnsImageImport.err = func() error {
			dir, err := os.MkdirTemp("", "pk-dns-image-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			bin := filepath.Join(dir, "dns")
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./bench/dns")
			cmd.Dir = "../.."
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go build ./bench/dns: %w\n%s", err, out)
			}
			base, rootfs := filepath.Join(dir, "busybox.tar"), filepath.Join(dir, "dns.tar")
			if err := framework.BusyboxTar(base, nil); err != nil {
				return fmt.Errorf("busybox rootfs: %w", err)
			}
			if err := framework.AppendFileToTar(base, rootfs, bin, "bin/dns"); err != nil {
				return fmt.Errorf("image rootfs: %w", err)
			}
			_, err = framework.Run(t.Context(), nil, Binary, "images", "import", "--data-dir", shared.DataDir, "--name", dnsImage, rootfs)
			return err
		}()
	})
	if dnsImageImport.err != nil {
		t.Fatalf("import %s: %v", dnsImage, dnsImageImport.err)
	}
}

// dnsPod is a pod in ns that sleeps in image, changed by edit.
func dnsPod(ns, name, image string, edit func(*corev1.PodSpec)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "main", Image: image, Command: []string{"sleep", "3600"},
			}},
		},
	}
	if edit != nil {
		edit(&p.Spec)
	}
	return p
}

// webBackend serves its own name on :8080 with busybox httpd, ready once
// the port is open.
func webBackend(ns, name string) *corev1.Pod {
	return dnsPod(ns, name, "busybox", func(s *corev1.PodSpec) {
		s.Containers[0].Command = []string{"sh", "-c", "mkdir -p /www && echo " + name + " > /www/index.html && exec httpd -f -p 8080 -h /www"}
		s.Containers[0].ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1,
		}
	})
}

// createService creates svc (its namespace deletes it at the end).
func createService(t *testing.T, c kubernetes.Interface, svc *corev1.Service) *corev1.Service {
	t.Helper()
	created, err := c.CoreV1().Services(svc.Namespace).Create(t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s/%s: %v", svc.Namespace, svc.Name, err)
	}
	return created
}

// dnsReply is what `dns query` prints (bench/dns). Records are dig's
// presentation format with single spaces: "NAME TTL CLASS TYPE DATA".
type dnsReply struct {
	Rcode      string   `json:"rcode"`
	AA         bool     `json:"aa"`
	TC         bool     `json:"tc"`
	Answer     []string `json:"answer"`
	Authority  []string `json:"authority"`
	Additional []string `json:"additional"`
}

func (r dnsReply) String() string {
	return fmt.Sprintf("rcode=%s aa=%v tc=%v answer=%q authority=%q additional=%q", r.Rcode, r.AA, r.TC, r.Answer, r.Authority, r.Additional)
}

// noTTL drops the TTL (second field) of each record, sorted, so that
// answers compare without regard to order or TTL.
func noTTL(rrs []string) []string {
	out := []string{}
	for _, rr := range rrs {
		f := strings.Fields(rr)
		if len(f) > 2 {
			f = append(f[:1], f[2:]...)
		}
		out = append(out, strings.Join(f, " "))
	}
	slices.Sort(out)
	return out
}

// dnsQuery asks the cluster DNS server for name's qtype from pod (which
// runs dnsImage), over UDP, or TCP with tcp set.
func dnsQuery(ctx context.Context, ns, pod, name, qtype string, tcp bool) (dnsReply, error) {
	args := []string{"/bin/dns", "query", "--server", clusterDNSIP + ":53"}
	if tcp {
		args = append(args, "--tcp")
	}
	out, err := shared.PodExec(ctx, ns, pod, append(args, name, qtype)...)
	if err != nil {
		return dnsReply{}, err
	}
	var r dnsReply
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return dnsReply{}, fmt.Errorf("dns query output %q: %w", out, err)
	}
	return r, nil
}

// pollDNS asks until ok holds for the reply (the server reads informer
// caches, which follow the API server shortly after a write) and returns
// it; it fails the test with the last reply otherwise.
func pollDNS(t *testing.T, ns, pod, name, qtype string, ok func(dnsReply) bool) dnsReply {
	t.Helper()
	var r dnsReply
	var err error
	pollErr := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		r, err = dnsQuery(ctx, ns, pod, name, qtype, false)
		return err == nil && ok(r), nil
	})
	if pollErr != nil {
		t.Fatalf("%s %s: last reply %s (%v)", qtype, name, r, err)
	}
	return r
}

// answerIs is an ok for pollDNS: NOERROR, authoritative, and exactly the
// records want (TTLs left out, any order).
func answerIs(want ...string) func(dnsReply) bool {
	slices.Sort(want)
	return func(r dnsReply) bool {
		return r.Rcode == "NOERROR" && r.AA && slices.Equal(noTTL(r.Answer), want)
	}
}

// nxdomain is an ok for pollDNS: NXDOMAIN, authoritative, no answer, and
// the cluster zone's SOA in the authority section.
func nxdomain(r dnsReply) bool {
	return r.Rcode == "NXDOMAIN" && r.AA && len(r.Answer) == 0 &&
		len(r.Authority) == 1 && strings.HasPrefix(noTTL(r.Authority)[0], "cluster.local. IN SOA ")
}

// reverseName is ip's in-addr.arpa name.
func reverseName(ip string) string {
	o := strings.Split(ip, ".")
	slices.Reverse(o)
	return strings.Join(o, ".") + ".in-addr.arpa."
}

// dashed IP is how the server names an endpoint without a hostname, as
// CoreDNS does: 10.244.0.5 is 10-244-0-5.
func dashedIP(ip string) string { return strings.ReplaceAll(ip, ".", "-") }

func TestDNSRecords(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	importDNSImage(t)
	importChapterImage(t, shared, curlImageSpec(), "")
	ns := framework.NewNamespace(t, c, "dns-")
	zone := ns + ".svc.cluster.local."

	webSpec := func(name string, headless bool, port int32) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "web"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		if headless {
			s.Spec.ClusterIP = corev1.ClusterIPNone
		}
		return s
	}
	web := createService(t, c, webSpec("web", false, 80))
	createService(t, c, webSpec("web-headless", true, 8080))
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: ns},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "web." + ns + ".svc.cluster.local"},
	})
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext-out", Namespace: ns},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "www.example.com"},
	})
	web1, web2 := webBackend(ns, "web-1"), webBackend(ns, "web-2")
	web1.Labels, web2.Labels = map[string]string{"app": "web"}, map[string]string{"app": "web"}
	pods := framework.RunPods(t, c, web1, web2, dnsPod(ns, "client", dnsImage, nil), dnsPod(ns, "curl", curlImage, nil))
	ip1, ip2 := pods["web-1"].Status.PodIP, pods["web-2"].Status.PodIP
	vip := web.Spec.ClusterIP

	t.Run("kubernetes service A", func(t *testing.T) {
		r := pollDNS(t, ns, "client", "kubernetes.default.svc.cluster.local", "A",
			answerIs("kubernetes.default.svc.cluster.local. IN A 10.96.0.1"))
		if f := strings.Fields(r.Answer[0]); f[1] == "0" {
			t.Errorf("answer %q has TTL 0", r.Answer[0])
		}
		// The same over TCP.
		r, err := dnsQuery(t.Context(), ns, "client", "kubernetes.default.svc.cluster.local", "A", true)
		if err != nil || !answerIs("kubernetes.default.svc.cluster.local. IN A 10.96.0.1")(r) {
			t.Errorf("over TCP: %s (%v)", r, err)
		}
	})

	t.Run("search path", func(t *testing.T) {
		// glibc's resolver in the curl image, through the pod's
		// resolv.conf: a name with fewer than 5 dots is tried with each
		// search domain first; remote_ip is the address curl connected
		// to. The bare name `kubernetes` is the default namespace's, as
		// in the chapter's curl pod.
		curlIn := func(ns, pod, name string) (string, error) {
			return shared.PodExec(t.Context(), ns, pod, "curl", "-sk", "-o", "/dev/null", "-w", "%{remote_ip}", "https://"+name+"/version")
		}
		defaultCurl := uniqueName("dns-curl-")
		t.Cleanup(func() {
			c.CoreV1().Pods("default").Delete(context.Background(), defaultCurl, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		})
		framework.RunPods(t, c, dnsPod("default", defaultCurl, curlImage, nil))
		for _, name := range []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} {
			if out, err := curlIn("default", defaultCurl, name); err != nil || out != "10.96.0.1" {
				t.Errorf("in namespace default, curl https://%s/version connected to %q, want 10.96.0.1 (%v)", name, out, err)
			}
		}
		for _, name := range []string{"kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} {
			if out, err := curlIn(ns, "curl", name); err != nil || out != "10.96.0.1" {
				t.Errorf("in namespace %s, curl https://%s/version connected to %q, want 10.96.0.1 (%v)", ns, name, out, err)
			}
		}
		// From another namespace the bare name is that namespace's
		// Service, which does not exist: curl exits 6, "Could not
		// resolve host".
		_, err := curlIn(ns, "curl", "kubernetes")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !strings.Contains(err.Error(), "command terminated with exit code 6") {
			t.Errorf("in namespace %s, curl https://kubernetes/version: %v, want exit code 6 (name not resolved)", ns, err)
		}
		// A Service of the pod's own namespace by its bare name.
		out, err := shared.PodExec(t.Context(), ns, "curl", "curl", "-sS", "-w", " %{remote_ip}", "http://web/")
		if f := strings.Fields(out); err != nil || len(f) != 2 || (f[0] != "web-1" && f[0] != "web-2") || f[1] != vip {
			t.Errorf("curl http://web/: %q, want web-1 or web-2 from %s (%v)", out, vip, err)
		}
		// busybox nslookup (1.35) asks the resolv.conf nameserver but
		// applies no search domain: it needs the full name.
		out, err = shared.PodExec(t.Context(), ns, "client", "nslookup", "-type=a", "kubernetes.default.svc.cluster.local")
		if want := "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tkubernetes.default.svc.cluster.local\nAddress: 10.96.0.1\n\n"; err != nil || out != want {
			t.Errorf("nslookup kubernetes.default.svc.cluster.local:\n%q\nwant:\n%q\n(%v)", out, want, err)
		}
	})

	t.Run("ClusterIP service A", func(t *testing.T) {
		pollDNS(t, ns, "client", "web."+zone, "A", answerIs("web."+zone+" IN A "+vip))
		// Names compare case-insensitively; the answer keeps the question's spelling.
		pollDNS(t, ns, "client", "WEB."+strings.ToUpper(zone), "A", answerIs("WEB."+strings.ToUpper(zone)+" IN A "+vip))
	})

	t.Run("headless service A", func(t *testing.T) {
		pollDNS(t, ns, "client", "web-headless."+zone, "A",
			answerIs("web-headless."+zone+" IN A "+ip1, "web-headless."+zone+" IN A "+ip2))
	})

	t.Run("SRV", func(t *testing.T) {
		name := "_http._tcp.web." + zone
		r := pollDNS(t, ns, "client", name, "SRV", answerIs(name+" IN SRV 0 100 80 web."+zone))
		if got, want := noTTL(r.Additional), []string{"web." + zone + " IN A " + vip}; !slices.Equal(got, want) {
			t.Errorf("SRV %s additional %q, want %q", name, got, want)
		}
		// A headless Service: one record per ready endpoint, named for
		// its address, each resolving to it.
		name = "_http._tcp.web-headless." + zone
		t1, t2 := dashedIP(ip1)+".web-headless."+zone, dashedIP(ip2)+".web-headless."+zone
		r = pollDNS(t, ns, "client", name, "SRV", answerIs(name+" IN SRV 0 50 8080 "+t1, name+" IN SRV 0 50 8080 "+t2))
		if got, want := noTTL(r.Additional), noTTL([]string{t1 + " 5 IN A " + ip1, t2 + " 5 IN A " + ip2}); !slices.Equal(got, want) {
			t.Errorf("SRV %s additional %q, want %q", name, got, want)
		}
		pollDNS(t, ns, "client", t1, "A", answerIs(t1+" IN A "+ip1))
		// A port name that does not exist.
		pollDNS(t, ns, "client", "_nope._tcp.web."+zone, "SRV", nxdomain)
	})

	t.Run("PTR", func(t *testing.T) {
		pollDNS(t, ns, "client", reverseName(vip), "PTR", answerIs(reverseName(vip)+" IN PTR web."+zone))
		pollDNS(t, ns, "client", reverseName("10.96.0.1"), "PTR", answerIs(reverseName("10.96.0.1")+" IN PTR kubernetes.default.svc.cluster.local."))
	})

	t.Run("pod A", func(t *testing.T) {
		name := "1-2-3-4." + ns + ".pod.cluster.local."
		pollDNS(t, ns, "client", name, "A", answerIs(name+" IN A 1.2.3.4"))
	})

	t.Run("NXDOMAIN", func(t *testing.T) {
		for _, name := range []string{"missing." + zone, "missing.svc.cluster.local.", "www.example.com." + zone} {
			pollDNS(t, ns, "client", name, "A", nxdomain)
		}
	})

	t.Run("ExternalName", func(t *testing.T) {
		pollDNS(t, ns, "client", "ext-out."+zone, "CNAME", answerIs("ext-out."+zone+" IN CNAME www.example.com."))
		// A CNAME into the cluster domain is followed.
		pollDNS(t, ns, "client", "ext."+zone, "A", answerIs("ext."+zone+" IN CNAME web."+zone, "web."+zone+" IN A "+vip))
		out, err := shared.PodExec(t.Context(), ns, "curl", "curl", "-sS", "-w", " %{remote_ip}", "http://ext/")
		if f := strings.Fields(out); err != nil || len(f) != 2 || f[1] != vip {
			t.Errorf("curl http://ext/: %q, want an answer from %s (%v)", out, vip, err)
		}
	})

	t.Run("deleted service stops answering", func(t *testing.T) {
		gone := createService(t, c, webSpec("gone", false, 80))
		pollDNS(t, ns, "client", "gone."+zone, "A", answerIs("gone."+zone+" IN A "+gone.Spec.ClusterIP))
		pollDNS(t, ns, "client", "_http._tcp.gone."+zone, "SRV", answerIs("_http._tcp.gone."+zone+" IN SRV 0 100 80 gone."+zone))
		if err := c.CoreV1().Services(ns).Delete(t.Context(), "gone", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		pollDNS(t, ns, "client", "gone."+zone, "A", nxdomain)
		pollDNS(t, ns, "client", "_http._tcp.gone."+zone, "SRV", nxdomain)
	})
}

// resolvConf is a resolv.conf's nameservers, search list and options as
// kubelet's parseResolvConf reads them: nameservers accumulate, the last
// search line wins (trailing dots trimmed, "." ignored), options
// accumulate with a later one replacing an earlier one of the same name.
type resolvConf struct {
	nameservers, searches, options []string
}

func parseResolv(content string) resolvConf {
	var rc resolvConf
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(strings.TrimSpace(line))
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) >= 2 {
				rc.nameservers = append(rc.nameservers, f[1])
			}
		case "search":
			rc.searches = nil
			for _, s := range f[1:] {
				if s != "." {
					rc.searches = append(rc.searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			for _, o := range f[1:] {
				name, _, _ := strings.Cut(o, ":")
				i := slices.IndexFunc(rc.options, func(e string) bool { n, _, _ := strings.Cut(e, ":"); return n == name })
				if i >= 0 {
					rc.options[i] = o
				} else {
					rc.options = append(rc.options, o)
				}
			}
		}
	}
	return rc
}

// render is the file a CRI runtime (containerd's parseDNSOptions) writes
// from kubelet's DNSConfig: a search line, a nameserver line each, an
// options line, empty parts left out. With sortOptions the options are
// sorted: kubelet merges a pod's dnsConfig options through a Go map, so
// their order is random.
func (rc resolvConf) render(sortOptions bool) string {
	var b strings.Builder
	if len(rc.searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(rc.searches, " "))
	}
	for _, n := range rc.nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", n)
	}
	opts := slices.Clone(rc.options)
	if sortOptions {
		slices.Sort(opts)
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	return b.String()
}

// dedup is kubelet's omitDuplicates.
func dedup(s []string) []string {
	var out []string
	for _, e := range s {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// TestDNSResolvConf checks each pod's /etc/resolv.conf against what
// kubelet's dns.Configurer.GetPodDNS (pkg/kubelet/network/dns) computes
// from this host's /etc/resolv.conf, --cluster-dns=10.96.0.10 and
// --cluster-domain=cluster.local, rendered as containerd writes it.
func TestDNSResolvConf(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "dns-resolv-")
	hostFile, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	host := parseResolv(string(hostFile))
	cluster := resolvConf{
		nameservers: []string{clusterDNSIP},
		searches:    dedup(append([]string{ns + ".svc.cluster.local", "svc.cluster.local", "cluster.local"}, host.searches...)),
		options:     []string{"ndots:5"},
	}
	ndots2, empty := "2", ""
	podConfig := &corev1.PodDNSConfig{
		Nameservers: []string{"192.0.2.53", clusterDNSIP},
		Searches:    []string{"my.example", "svc.cluster.local"},
		Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots2}, {Name: "edns0"}, {Name: "single-request", Value: &empty}},
	}
	// ClusterFirst with dnsConfig: kubelet's appendDNSConfig over the
	// ClusterFirst result.
	merged := resolvConf{
		nameservers: dedup(append(slices.Clone(cluster.nameservers), podConfig.Nameservers...)),
		searches:    dedup(append(slices.Clone(cluster.searches), podConfig.Searches...)),
		options:     []string{"ndots:2", "edns0", "single-request"},
	}
	tests := []struct {
		name string
		edit func(*corev1.PodSpec)
		want resolvConf
	}{
		{name: "ClusterFirst", edit: nil, want: cluster},
		{name: "Default", edit: func(s *corev1.PodSpec) { s.DNSPolicy = corev1.DNSDefault }, want: host},
		{name: "None with dnsConfig", edit: func(s *corev1.PodSpec) {
			s.DNSPolicy = corev1.DNSNone
			s.DNSConfig = &corev1.PodDNSConfig{
				Nameservers: []string{"192.0.2.1", "192.0.2.2"},
				Searches:    []string{"a.example", "b.example"},
				Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots2}, {Name: "edns0"}},
			}
		}, want: resolvConf{nameservers: []string{"192.0.2.1", "192.0.2.2"}, searches: []string{"a.example", "b.example"}, options: []string{"ndots:2", "edns0"}}},
		{name: "ClusterFirst with dnsConfig", edit: func(s *corev1.PodSpec) { s.DNSConfig = podConfig }, want: merged},
		{name: "hostNetwork ClusterFirst", edit: func(s *corev1.PodSpec) { s.HostNetwork = true }, want: host},
		{name: "hostNetwork ClusterFirstWithHostNet", edit: func(s *corev1.PodSpec) {
			s.HostNetwork, s.DNSPolicy = true, corev1.DNSClusterFirstWithHostNet
		}, want: cluster},
	}
	var pods []*corev1.Pod
	for i, tt := range tests {
		pods = append(pods, dnsPod(ns, fmt.Sprintf("resolv-%d", i), "busybox", tt.edit))
	}
	framework.RunPods(t, c, pods...)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := shared.PodExec(t.Context(), ns, pods[i].Name, "cat", "/etc/resolv.conf")
			if err != nil {
				t.Fatal(err)
			}
			// Exact content, options compared sorted.
			if want := tt.want.render(true); parseResolv(got).render(true) != want || len(strings.Split(got, "\n")) != len(strings.Split(want, "\n")) {
				t.Errorf("/etc/resolv.conf:\n%s\nwant (options in any order):\n%s", got, want)
			}
		})
	}
	// The one kubelet writes byte for byte, without a map in the way.
	t.Run("ClusterFirst exact", func(t *testing.T) {
		got, err := shared.PodExec(t.Context(), ns, pods[0].Name, "cat", "/etc/resolv.conf")
		if err != nil {
			t.Fatal(err)
		}
		if want := cluster.render(false); got != want {
			t.Errorf("/etc/resolv.conf:\n%q\nwant:\n%q", got, want)
		}
	})
}

// TestDNSNotOpenResolver (issue 13): the node's CoreDNS listens on the
// node's address, where anyone on the node's network reaches it. It must
// answer pods and the node itself only, not be an open resolver that also
// tells strangers the cluster's Services. The stranger here lives in a
// network namespace of its own, on another subnet, with its default
// route through this machine; it asks the DNS server's address and the
// kube-dns Service address, over UDP and TCP, and gets REFUSED or
// nothing. The node still gets answers; pods do too (TestDNSRecords).
func TestDNSNotOpenResolver(t *testing.T) {
	ctx := t.Context()
	c := shared.Client(t)
	// The server's address is the kube-dns EndpointSlice's, which
	// pocketkube creates once the cluster is up; CoreDNS then answers
	// the node once its informers have synced.
	const name = "kubernetes.default.svc.cluster.local."
	query := new(dns.Msg).SetQuestion(name, dns.TypeA)
	var server, last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		slices, err := c.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kube-dns"})
		if err != nil || len(slices.Items) == 0 || len(slices.Items[0].Endpoints) == 0 || len(slices.Items[0].Endpoints[0].Addresses) == 0 {
			last = fmt.Sprintf("no kube-dns EndpointSlice (%v)", err)
			return false, nil
		}
		server = slices.Items[0].Endpoints[0].Addresses[0]
		// The node itself.
		for _, network := range []string{"udp", "tcp"} {
			r, err := exchange(network, server, query, nil)
			if err != nil {
				last = fmt.Sprintf("node asks %s over %s: %v", server, network, err)
				return false, nil
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				last = fmt.Sprintf("node asks %s over %s: %s with %d answers, want an answer", server, network, dns.RcodeToString[r.Rcode], len(r.Answer))
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("%s: %v", last, err)
	}

	// A stranger routed through this machine.
	stranger := newStranger(t)
	for _, addr := range []string{server, clusterDNSIP} {
		for _, network := range []string{"udp", "tcp"} {
			for _, q := range []*dns.Msg{query, new(dns.Msg).SetQuestion("example.com.", dns.TypeA)} {
				r, err := exchange(network, addr, q, stranger)
				if err != nil {
					t.Logf("stranger asks %s over %s for %s: no answer (%v)", addr, network, q.Question[0].Name, err)
					continue
				}
				if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
					t.Errorf("stranger asks %s over %s for %s: %s with answers %v, want REFUSED or no answer", addr, network, q.Question[0].Name, dns.RcodeToString[r.Rcode], r.Answer)
				}
			}
		}
	}
}

// exchange sends q to addr:53 over network, from the network namespace
// open as netns (nil: this process's own), and returns the answer.
func exchange(network, addr string, q *dns.Msg, netns *os.File) (*dns.Msg, error) {
	conn, err := dialIn(netns, network, net.JoinHostPort(addr, "53"))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	co := &dns.Conn{Conn: conn}
	co.SetDeadline(time.Now().Add(3 * time.Second))
	if err := co.WriteMsg(q); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

// dialIn dials from netns: a socket belongs to the network namespace of
// the thread that created it.
func dialIn(netns *os.File, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	if netns == nil {
		return d.Dial(network, addr)
	}
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer self.Close()
		if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("enter netns: %w", err)}
			return
		}
		conn, err := d.Dial(network, addr)
		ch <- result{conn, err}
		// A thread that cannot go back ends with this goroutine.
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	r := <-ch
	return r.conn, r.err
}

// newStranger makes a network namespace with a veth pair to this
// machine on 198.18.x.0/30 (the benchmarking range, RFC 2544), routed
// through it, and returns it open; the test's end removes both.
func newStranger(t *testing.T) *os.File {
	t.Helper()
	pid := os.Getpid() % 100000
	ns, host, peer := fmt.Sprintf("pkdns%d", pid), fmt.Sprintf("pkdh%d", pid), fmt.Sprintf("pkdn%d", pid)
	subnet := fmt.Sprintf("198.18.%d", 4*(pid%64))
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	ip("netns", "add", ns)
	ip("link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns)
	ip("addr", "add", subnet+".1/30", "dev", host)
	ip("link", "set", host, "up")
	ip("-n", ns, "addr", "add", subnet+".2/30", "dev", peer)
	ip("-n", ns, "link", "set", peer, "up")
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "route", "add", "default", "via", subnet+".1")
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	// The stranger's link must be up before it asks.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := exec.Command("ip", "-n", ns, "-o", "link", "show", peer).Output()
		if strings.Contains(string(out), "LOWER_UP") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return f
}
