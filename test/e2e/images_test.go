//go:build e2e

package e2e

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// rootfsTar writes a root filesystem tar to a file, streaming (the
// pocketkube binary alone is ~200 MB). Parent directories are added
// before their entries, each name is written once (the first wins), and
// the first error sticks and is returned by Close.
type rootfsTar struct {
	f    *os.File
	tw   *tar.Writer
	now  time.Time
	seen map[string]bool
	err  error
}

func newRootfsTar(file string) (*rootfsTar, error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	return &rootfsTar{f: f, tw: tar.NewWriter(f), now: time.Now(), seen: map[string]bool{}}, nil
}

// tarName turns an absolute or relative path into a tar entry name.
func tarName(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// parents adds the directories above name.
func (r *rootfsTar) parents(name string) {
	if d := path.Dir(name); d != "." && d != "/" {
		r.Dir(d, 0o755)
	}
}

func (r *rootfsTar) header(h *tar.Header) bool {
	if r.err != nil || r.seen[h.Name] {
		return false
	}
	r.seen[h.Name] = true
	h.ModTime = r.now
	r.err = r.tw.WriteHeader(h)
	return r.err == nil
}

// Dir adds directory name and its parents.
func (r *rootfsTar) Dir(name string, mode int64) {
	name = tarName(name)
	if r.seen[name] {
		return
	}
	r.parents(name)
	r.header(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode})
}

// File adds a regular file with data.
func (r *rootfsTar) File(name string, mode int64, data []byte) {
	name = tarName(name)
	r.parents(name)
	if r.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}) {
		_, r.err = r.tw.Write(data)
	}
}

// Symlink adds name pointing at target.
func (r *rootfsTar) Symlink(name, target string) {
	name = tarName(name)
	r.parents(name)
	r.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
}

// HostFile adds the host's file src (symlinks followed) as name.
func (r *rootfsTar) HostFile(src, name string, mode int64) {
	if r.err != nil {
		return
	}
	f, err := os.Open(src)
	if err != nil {
		r.err = err
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		r.err = err
		return
	}
	name = tarName(name)
	r.parents(name)
	if r.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: st.Size()}) {
		_, r.err = io.Copy(r.tw, f)
	}
}

// Binary adds the host's executable src as name, with every library ldd
// lists for it at the path ldd gives (the dynamic loader included), so
// that it runs as on the host. A static binary has none.
func (r *rootfsTar) Binary(src, name string) {
	r.HostFile(src, name, 0o755)
	libs, err := sharedLibraries(src)
	if err != nil {
		if r.err == nil {
			r.err = err
		}
		return
	}
	for _, lib := range libs {
		r.HostFile(lib, lib, 0o755)
	}
}

// Busybox adds the host's busybox-static as /bin/busybox with a symlink
// per applet (one not already added), /etc/passwd and /etc/group with
// root and nobody, and the usual top directories: the busybox image of
// image_test.go.
func (r *rootfsTar) Busybox() {
	bin, err := exec.LookPath("busybox")
	if err != nil {
		r.err = err
		return
	}
	list, err := exec.Command(bin, "--list").Output()
	if err != nil {
		r.err = fmt.Errorf("busybox --list: %w", err)
		return
	}
	for _, d := range []string{"bin", "etc", "dev", "proc", "sys", "root", "home", "var", "usr/bin"} {
		r.Dir(d, 0o755)
	}
	r.Dir("tmp", 0o1777)
	r.HostFile(bin, "bin/busybox", 0o755)
	r.File("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"))
	r.File("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n"))
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			r.Symlink("bin/"+applet, "busybox")
		}
	}
}

// Close finishes the tar and returns the first error.
func (r *rootfsTar) Close() error {
	if r.err == nil {
		r.err = r.tw.Close()
	}
	if err := r.f.Close(); r.err == nil {
		r.err = err
	}
	return r.err
}

// sharedLibraries returns the absolute paths ldd prints for binary: each
// "name => /path (addr)" and the loader's "/path (addr)". A static binary
// ("not a dynamic executable", ldd exits 1) has none.
func sharedLibraries(binary string) ([]string, error) {
	out, err := exec.Command("ldd", binary).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", binary, err, out)
	}
	var libs []string
	s := bufio.NewScanner(strings.NewReader(string(out)))
	for s.Scan() {
		for _, f := range strings.Fields(s.Text()) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
				break
			}
		}
	}
	return libs, s.Err()
}

// curlRootfs builds tutum/curl: busybox (sh, env, grep, sleep, cat…),
// /usr/bin/curl and /bin/bash with their libraries (the chapter runs
// `kubectl exec -it curl bash`), the host's CA bundle where Debian's curl
// looks for it (/etc/ssl/certs/ca-certificates.crt, in the CA path
// /etc/ssl/certs), and /etc/nsswitch.conf with `hosts: files dns`, so
// that glibc resolves names with /etc/hosts and then the /etc/resolv.conf
// the node writes. glibc ≥ 2.34 has files and dns built in; the
// libnss_files/libnss_dns stubs are copied for older ones.
func curlRootfs(file string) error {
	r, err := newRootfsTar(file)
	if err != nil {
		return err
	}
	r.Binary("/usr/bin/curl", "usr/bin/curl")
	r.Binary("/bin/bash", "bin/bash")
	libs, _ := sharedLibraries("/usr/bin/curl")
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
	r, err := newRootfsTar(file)
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
	r, err := newRootfsTar(file)
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := framework.Run(ctx, nil, Binary, append(args, file)...); err != nil {
		t.Fatalf("import %s: %v", img.name, err)
	}
	chapterImported[key] = variant
}
