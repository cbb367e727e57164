//go:build bench

package bench

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
	"github.com/pocketkube/pocketkube/internal/pki"
	"github.com/pocketkube/pocketkube/test/framework"
)

// The peer lane (issue 16): pocketkube's node agent against upstream's
// kubelet + containerd + runc on the same machine, in the same run, under
// the same control plane. hack/peers/build.sh builds the peers from the
// module cache at the versions pinned in hack/peers/*/go.mod into
// PEERS_DIR (/var/cache/pocketkube/peers); runc is the host's, the one
// pocketkube runs.
const (
	peerKubeletVersion    = "v1.37.2"
	peerContainerdVersion = "v2.4.2"
	// peerSandboxImage is the name containerd's CRI runs each pod's
	// sandbox from: an image of pocketkube's own pause process (the
	// static shim binary, as pocketkube's SharePID pods run it).
	peerSandboxImage = "registry.k8s.io/pause:3.10.2"
	// peerBridge and peerSubnet are the peer's CNI network: the conflist
	// pocketkube writes (bridge plugin, host-local IPAM, no masquerade)
	// under another bridge name and subnet, so that it clashes with no
	// pocketkube node on the machine.
	peerBridge = "pkpeer0"
	peerSubnet = "10.245.0.0/24"
	// peerCgroupRoot is kubelet's --cgroup-root: kubelet's kubepods
	// hierarchy goes under it, apart from pocketkube's /kubepods.
	peerCgroupRoot = "pk-peer"
	peerNodeName   = "pk-peer-node"
)

type peerBins struct{ kubelet, containerd, shim, ctr string }

func peerBinaries(b *testing.B) peerBins {
	b.Helper()
	dir := os.Getenv("PEERS_DIR")
	if dir == "" {
		dir = "/var/cache/pocketkube/peers"
	}
	kd, cd := filepath.Join(dir, "kubelet-"+peerKubeletVersion), filepath.Join(dir, "containerd-"+peerContainerdVersion)
	p := peerBins{
		kubelet: filepath.Join(kd, "kubelet"), containerd: filepath.Join(cd, "containerd"),
		shim: filepath.Join(cd, "containerd-shim-runc-v2"), ctr: filepath.Join(cd, "ctr"),
	}
	for _, f := range []string{p.kubelet, p.containerd, p.shim, p.ctr} {
		if _, err := os.Stat(f); err != nil {
			b.Fatalf("peer binary missing (build the peers with hack/peers/build.sh; make bench does): %v", err)
		}
	}
	return p
}

// peerNode is a `pocketkube up --disable-agent` (the same control plane
// as pocketkube's benchmarks: API server, scheduler, controllers) with
// kubelet and containerd as its node.
type peerNode struct {
	cp                  *framework.Cluster
	dir                 string
	bins                peerBins
	sock                string
	containerd, kubelet *process
	// netnsBefore are the network namespaces named like containerd's
	// (/run/netns/cni-*) before containerd started: those it makes
	// after are this node's.
	netnsBefore map[string]bool
}

var sharedPeer *peerNode

// peerCluster returns the peer node the peer benchmarks of one `go test`
// share, starting it on first use (after stopping pocketkube's pods
// cluster: one node on the machine at a time).
func peerCluster(b *testing.B) *peerNode {
	b.Helper()
	if sharedPeer != nil && sharedPeer.cp.Exited() == nil {
		return sharedPeer
	}
	stopPodsCluster()
	bins := peerBinaries(b)
	shimBin, err := filepath.Abs("../internal/node/runtime/shimbin/pocketkube-shim")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(shimBin); err != nil {
		b.Fatalf("the pause image is pocketkube's shim binary, built by make build: %v", err)
	}
	dir, err := os.MkdirTemp("", "pk-bench-peer-")
	if err != nil {
		b.Fatal(err)
	}
	cp, err := framework.StartCluster(framework.ClusterConfig{
		Binary: binary, DataDir: filepath.Join(dir, "data"), Host: listenHost, Args: []string{"--disable-agent"},
	})
	if err != nil {
		os.RemoveAll(dir)
		b.Fatal(err)
	}
	p := &peerNode{cp: cp, dir: dir, bins: bins, sock: filepath.Join(dir, "containerd.sock")}
	sharedPeer = p
	if err := p.start(b, shimBin); err != nil {
		stopPeerCluster()
		b.Fatal(err)
	}
	waitNodeReady(b, cp)
	return p
}

// startDaemon starts a process that outlives the benchmark that started
// it (stopPeerCluster stops it), its output in logPath.
func startDaemon(logPath string, env []string, name string, args ...string) (*process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	p := &process{cmd: cmd, start: time.Now(), log: log}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

func (p *peerNode) path(elem ...string) string {
	return filepath.Join(append([]string{p.dir}, elem...)...)
}

// start writes the configuration, starts containerd, imports the images,
// and starts kubelet.
func (p *peerNode) start(b *testing.B, pauseBin string) error {
	pkiDir := filepath.Join(p.cp.DataDir, "pki")
	for _, d := range []string{"containerd", "cni/conf", "cni/ipam", "kubelet", "pod-logs", "pki", "opt"} {
		if err := os.MkdirAll(p.path(d), 0o700); err != nil {
			return err
		}
	}
	// Everything containerd keeps goes under dir; NRI, which would listen
	// on a host-wide socket, is off. restrict_oom_score_adj: where root
	// lacks CAP_SYS_RESOURCE (these VMs), runc cannot set the sandbox's
	// -998 and fails the pod; pocketkube's agent raises what it cannot set
	// the same way.
	toml := fmt.Sprintf(`version = 4
root = %[1]q
state = %[2]q
imports = []
[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = %[3]q
  [plugins.'io.containerd.server.v1.ttrpc']
    address = %[4]q
  [plugins.'io.containerd.internal.v1.opt']
    path = %[5]q
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[6]q
  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '/usr/sbin/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = %[7]q
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
`, p.path("containerd", "root"), p.path("containerd", "state"), p.sock, p.sock+".ttrpc",
		p.path("opt"), peerSandboxImage, p.path("cni", "conf"))
	conflist := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "pk-peer",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    }
  ]
}
`, peerBridge, peerSubnet, p.path("cni", "ipam"))
	for f, data := range map[string]string{"containerd.toml": toml, "cni/conf/10-pk-peer.conflist": conflist} {
		if err := os.WriteFile(p.path(f), []byte(data), 0o600); err != nil {
			return err
		}
	}
	p.netnsBefore = map[string]bool{}
	for _, n := range containerdNetNS() {
		p.netnsBefore[n] = true
	}
	// containerd finds its shim on PATH.
	env := []string{"PATH=" + filepath.Dir(p.bins.shim) + ":" + os.Getenv("PATH")}
	var err error
	if p.containerd, err = startDaemon(p.path("containerd.log"), env, p.bins.containerd, "--config", p.path("containerd.toml")); err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(b.Context(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if p.containerd.cmd.ProcessState != nil {
			return false, fmt.Errorf("containerd exited")
		}
		_, err := exec.CommandContext(ctx, p.bins.ctr, "--address", p.sock, "version").Output()
		return err == nil, nil
	}); err != nil {
		out, _ := os.ReadFile(p.path("containerd.log"))
		return fmt.Errorf("containerd not serving: %v\n%s", err, framework.Tail(string(out), 40))
	}
	if err := p.importImages(b, pauseBin); err != nil {
		return err
	}
	if err := p.writeKubeletConfig(pkiDir); err != nil {
		return err
	}
	for _, d := range cgroupMounts() {
		os.Mkdir(filepath.Join(d, peerCgroupRoot), 0o755)
	}
	p.kubelet, err = startDaemon(p.path("kubelet.log"), nil, p.bins.kubelet,
		"--config", p.path("kubelet.yaml"), "--kubeconfig", p.path("kubelet.kubeconfig"),
		"--root-dir", p.path("kubelet"), "--cert-dir", p.path("pki"),
		"--hostname-override", peerNodeName, "--node-ip", listenHost)
	return err
}

// importImages imports the busybox image of BenchmarkPodStart (the
// host's busybox-static, framework.BusyboxTar) and the sandbox image into
// containerd's k8s.io namespace, as docker-save archives.
func (p *peerNode) importImages(b *testing.B, pauseBin string) error {
	busybox := p.path("busybox-layer.tar")
	if err := framework.BusyboxTar(busybox, nil); err != nil {
		return err
	}
	pauseData, err := os.ReadFile(pauseBin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pause", Mode: 0o755, Size: int64(len(pauseData)), ModTime: time.Now()})
	tw.Write(pauseData)
	tw.Close()
	pause := p.path("pause-layer.tar")
	if err := os.WriteFile(pause, buf.Bytes(), 0o644); err != nil {
		return err
	}
	for _, im := range []struct {
		layer, ref string
		config     v1.Config
	}{
		{busybox, "docker.io/library/busybox:latest", v1.Config{Cmd: []string{"sh"}}},
		{pause, peerSandboxImage, v1.Config{Entrypoint: []string{"/pause", shim.PauseArg}, User: "65535:65535"}},
	} {
		layer, err := tarball.LayerFromFile(im.layer)
		if err != nil {
			return err
		}
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			return err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Config = "linux", "amd64", im.config
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		ref, err := name.NewTag(im.ref)
		if err != nil {
			return err
		}
		archive := im.layer + ".image"
		if err := tarball.WriteToFile(archive, ref, img); err != nil {
			return err
		}
		if out, err := exec.CommandContext(b.Context(), p.bins.ctr, "--address", p.sock, "-n", "k8s.io",
			"images", "import", archive).CombinedOutput(); err != nil {
			return fmt.Errorf("ctr images import %s: %v\n%s", im.ref, err, out)
		}
	}
	return nil
}

// writeKubeletConfig issues kubelet's client certificate (its node
// identity) and serving certificate (the API server verifies kubelets with
// the cluster CA) from the control plane's CA, and writes its kubeconfig
// and KubeletConfiguration: kubelet's defaults, but cgroupfs on this
// cgroup v1 host, containerd's socket, everything under dir, and cluster
// DNS at pocketkube's address (no server behind it here; no pod asks).
func (p *peerNode) writeKubeletConfig(pkiDir string) error {
	ca, err := pki.LoadAuthority(filepath.Join(pkiDir, "ca.crt"), filepath.Join(pkiDir, "ca.key"))
	if err != nil {
		return err
	}
	for _, c := range []struct {
		file string
		spec pki.Spec
	}{
		{"client", pki.Spec{CommonName: pki.NodeUserPrefix + peerNodeName, Organization: []string{pki.NodesGroup}}},
		{"serving", pki.Spec{CommonName: peerNodeName, DNSNames: []string{peerNodeName}, IPs: []net.IP{net.ParseIP(listenHost)}, Server: true}},
	} {
		crt, key, err := ca.Issue(c.spec, time.Now())
		if err != nil {
			return err
		}
		if err := os.WriteFile(p.path("pki", c.file+".crt"), crt, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(p.path("pki", c.file+".key"), key, 0o600); err != nil {
			return err
		}
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: pocketkube
  cluster: {server: %q, certificate-authority: %q}
users:
- name: kubelet
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: kubelet
  context: {cluster: pocketkube, user: kubelet}
current-context: kubelet
`, p.cp.Server, filepath.Join(pkiDir, "ca.crt"), p.path("pki", "client.crt"), p.path("pki", "client.key"))
	port, err := framework.FreePort(listenHost)
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%s
containerRuntimeEndpoint: unix://%s
address: %s
port: %d
readOnlyPort: 0
healthzPort: 0
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %s}
authorization: {mode: AlwaysAllow}
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
podLogsDir: %s
`, peerCgroupRoot, p.sock, listenHost, port, p.path("pki", "serving.crt"), p.path("pki", "serving.key"),
		filepath.Join(pkiDir, "ca.crt"), p.path("pod-logs"))
	if err := os.WriteFile(p.path("kubelet.kubeconfig"), []byte(kubeconfig), 0o600); err != nil {
		return err
	}
	return os.WriteFile(p.path("kubelet.yaml"), []byte(config), 0o600)
}

// cgroupMounts are the cgroup v1 hierarchies (and the v2 one) of the host.
func cgroupMounts() []string {
	data, _ := os.ReadFile("/proc/self/mounts")
	var dirs []string
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && (f[2] == "cgroup" || f[2] == "cgroup2") {
			dirs = append(dirs, f[1])
		}
	}
	return dirs
}

// shims are the containerd shims of this node (their command line names
// its socket), pauses the sandbox processes they started.
func (p *peerNode) shims() (shims, pauses []int) {
	out, _ := exec.Command("pgrep", "-f", "containerd-shim-runc-v2 .*-address "+p.sock).Output()
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		shims = append(shims, pid)
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, c := range strings.Fields(string(children)) {
			comm, _ := os.ReadFile("/proc/" + c + "/comm")
			if cpid, err := strconv.Atoi(c); err == nil && strings.TrimSpace(string(comm)) == "pause" {
				pauses = append(pauses, cpid)
			}
		}
	}
	return shims, pauses
}

// sumKiB is the VmRSS of processes pids together, in KiB.
func sumKiB(pids ...int) int { return sumOf(rssKiB, pids...) }

// sumPssKiB is the proportional set size of processes pids together, in
// KiB: what they cost the machine (sumKiB counts their shared binary once
// per process).
func sumPssKiB(pids ...int) int { return sumOf(pssKiB, pids...) }

func sumOf(kib func(int) (int, error), pids ...int) int {
	total := 0
	for _, pid := range pids {
		if k, err := kib(pid); err == nil {
			total += k
		}
	}
	return total
}

// deletePods deletes every pod of the default namespace and waits until
// they are gone from the API and their shims have exited.
func (p *peerNode) deletePods(ctx context.Context, timeout time.Duration) error {
	client, err := p.client()
	if err != nil {
		return err
	}
	client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{})
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		shims, _ := p.shims()
		return err == nil && len(l.Items) == 0 && len(shims) == 0, nil
	})
}

func (p *peerNode) client() (kubernetes.Interface, error) {
	cfg, err := p.cp.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// logs are the ends of kubelet's and containerd's logs and the events,
// for a failure.
func (p *peerNode) logs(ctx context.Context) string {
	var sb strings.Builder
	for _, f := range []string{"kubelet.log", "containerd.log"} {
		data, _ := os.ReadFile(p.path(f))
		fmt.Fprintf(&sb, "%s:\n%s\n", f, framework.Tail(string(data), 30))
	}
	out, _ := p.cp.Kubectl(ctx, framework.Newest(), "get", "events", "-A")
	fmt.Fprintf(&sb, "events:\n%s", framework.Tail(out, 30))
	return sb.String()
}

// stopPeerCluster stops the shared peer node, if one runs, and removes
// what it left: pods first (so kubelet tears their sandboxes down), then
// kubelet, containerd, the control plane; then leftover shims, mounts
// under its directory, its cgroups, its bridge, the directory.
func stopPeerCluster() {
	p := sharedPeer
	if p == nil {
		return
	}
	sharedPeer = nil
	if p.kubelet != nil && p.containerd != nil && p.cp.Exited() == nil {
		if err := p.deletePods(context.Background(), 2*time.Minute); err != nil {
			fmt.Fprintln(os.Stderr, "peer: pods not gone:", err)
		}
	}
	if p.kubelet != nil {
		p.kubelet.stop(syscall.SIGTERM, 20*time.Second)
	}
	if p.containerd != nil {
		p.containerd.stop(syscall.SIGTERM, 20*time.Second)
	}
	if p.cp.Exited() == nil {
		p.cp.Stop(30 * time.Second)
	}
	shims, pauses := p.shims()
	for _, pid := range append(pauses, shims...) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// Mounts under dir, deepest first.
	data, _ := os.ReadFile("/proc/self/mounts")
	var mounts []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], p.dir+"/") {
			mounts = append(mounts, f[1])
		}
	}
	slices.Reverse(mounts)
	for _, m := range mounts {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	for _, d := range cgroupMounts() {
		removeCgroupTree(filepath.Join(d, peerCgroupRoot))
	}
	// The network namespaces of sandboxes kubelet had not removed yet
	// (it removes those of deleted pods in its garbage collection).
	for _, n := range containerdNetNS() {
		if p.netnsBefore != nil && !p.netnsBefore[n] {
			exec.Command("ip", "netns", "del", n).Run()
		}
	}
	exec.Command("ip", "link", "del", peerBridge).Run()
	// kubelet links each container's log into /var/log/containers (not
	// configurable); the links of containers it did not remove point
	// into dir.
	links, _ := os.ReadDir("/var/log/containers")
	for _, l := range links {
		f := filepath.Join("/var/log/containers", l.Name())
		if target, err := os.Readlink(f); err == nil && strings.HasPrefix(target, p.dir+"/") {
			os.Remove(f)
		}
	}
	os.Remove("/var/log/containers") // if empty
	if err := removeUnlessMounted(p.dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// containerdNetNS are the network namespaces named as containerd's CRI
// names its sandboxes' (cni-UUID).
func containerdNetNS() []string {
	entries, _ := os.ReadDir("/run/netns")
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "cni-") {
			names = append(names, e.Name())
		}
	}
	return names
}

// removeCgroupTree removes the cgroup dir and those below it, deepest
// first (a cgroup directory goes with rmdir once it has no children).
func removeCgroupTree(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeCgroupTree(filepath.Join(dir, e.Name()))
		}
	}
	syscall.Rmdir(dir)
}

// BenchmarkPeerPodStart is BenchmarkPodStart on the peer node: the same
// pods, image, CNI bridge and control plane, with kubelet + containerd +
// runc instead of pocketkube's node agent.
func BenchmarkPeerPodStart(b *testing.B) {
	for _, n := range []int{1, 30, 100} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			p := peerCluster(b)
			measurePodStart(b, highQPSClient(b, p.cp), n, func() string { return p.logs(b.Context()) })
		})
	}
}

// BenchmarkPeerPodMemory is BenchmarkPodMemory on the peer node: the RSS
// of kubelet + containerd idle (no pods) and with 30 running pods, the
// shims' and the sandboxes' (pause) RSS, the memory per running pod
// ((kubelet + containerd growth + shims + pauses) / 30; by VmRSS, and by
// PSS, which counts the binary the shims share once; and by PSS again at
// steadyAfter, as BenchmarkPodMemory), and the RSS of
// the control plane alone (the `pocketkube up --disable-agent` under
// it), which BenchmarkPodMemory's idle RSS less this is pocketkube's node
// part.
func BenchmarkPeerPodMemory(b *testing.B) {
	const pods = 30
	p := peerCluster(b)
	var idle, busy, shims, pauses, shimsPss, pausesPss, steady, steadyPss, cp []float64
	for b.Loop() {
		time.Sleep(5 * time.Second)
		idleKiB := sumKiB(p.kubelet.cmd.Process.Pid, p.containerd.cmd.Process.Pid)
		cpKiB, err := rssKiB(p.cp.Pid())
		if err != nil {
			b.Fatal(err)
		}
		if err := runSleepers(b.Context(), p.cp, pods); err != nil {
			b.Fatalf("%v\n%s", err, p.logs(b.Context()))
		}
		time.Sleep(5 * time.Second)
		busyKiB := sumKiB(p.kubelet.cmd.Process.Pid, p.containerd.cmd.Process.Pid)
		s, ps := p.shims()
		idle, busy = append(idle, float64(idleKiB)/1024), append(busy, float64(busyKiB)/1024)
		shims, pauses = append(shims, float64(sumKiB(s...))/1024), append(pauses, float64(sumKiB(ps...))/1024)
		shimsPss, pausesPss = append(shimsPss, float64(sumPssKiB(s...))/1024), append(pausesPss, float64(sumPssKiB(ps...))/1024)
		time.Sleep(steadyAfter - 5*time.Second)
		steady = append(steady, float64(sumKiB(p.kubelet.cmd.Process.Pid, p.containerd.cmd.Process.Pid))/1024)
		s, ps = p.shims()
		steadyPss = append(steadyPss, float64(sumPssKiB(s...)+sumPssKiB(ps...))/1024)
		cp = append(cp, float64(cpKiB)/1024)
		if err := p.deletePods(b.Context(), 3*time.Minute); err != nil {
			b.Fatalf("pods not gone: %v", err)
		}
	}
	noNsPerOp(b)
	b.ReportMetric(mean(idle), "idle-rss-MiB")
	b.ReportMetric(mean(busy), "rss-30pods-MiB")
	b.ReportMetric((mean(busy)-mean(idle)+mean(shims)+mean(pauses))/pods, "MiB/pod")
	b.ReportMetric(mean(shims)/pods, "shim-MiB/pod")
	b.ReportMetric(mean(pauses)/pods, "pause-MiB/pod")
	b.ReportMetric((mean(busy)-mean(idle)+mean(shimsPss)+mean(pausesPss))/pods, "pss-MiB/pod")
	b.ReportMetric(mean(shimsPss)/pods, "shim-pss-MiB/pod")
	b.ReportMetric(mean(pausesPss)/pods, "pause-pss-MiB/pod")
	b.ReportMetric(mean(steady), "rss-30pods-steady-MiB")
	b.ReportMetric((mean(steady)-mean(idle)+mean(steadyPss))/pods, "steady-pss-MiB/pod")
	b.ReportMetric(mean(cp), "controlplane-rss-MiB")
}
