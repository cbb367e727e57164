package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pocketkube/pocketkube/test/framework"
)

// The registries of test/utils/image/manifest.go: the images are loaded
// under these names, so the suite runs with its defaults (no
// KUBE_TEST_REPO).
const (
	e2eRegistry = "registry.k8s.io/e2e-test-images"
	gcRegistry  = "registry.k8s.io"
)

// alpinePath is the PATH of Alpine's and busybox's images.
const alpinePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// image is one test image: its names, its layers (each a function that
// writes one root filesystem tar) and its config.
type image struct {
	names  []string
	layers []layer
	config v1.Config
}

// layer is a root filesystem tar, named for the cache: two images with
// the same layer name share it.
type layer struct {
	name  string
	write func(t tools, r *framework.RootfsTar) error
}

// testImages are the images the non-serial [Conformance] specs use
// (`e2e.test --list-conformance-images`), as far as they can be built
// offline: each stands in for upstream's with the same names, config and
// the files and tools the specs use.
func testImages() []image {
	agnhostLayer := layer{"agnhost", agnhostRootfs}
	agnhostConfig := v1.Config{
		Entrypoint:   []string{"/agnhost"},
		Cmd:          []string{"pause"},
		Env:          []string{alpinePath},
		ExposedPorts: ports(80, 8080, 8081, 9376, 5000),
	}
	webserver := func(what string) image {
		c := agnhostConfig
		c.Cmd = []string{"test-webserver"}
		return image{
			names: []string{e2eRegistry + "/" + what + ":1.8"},
			layers: []layer{agnhostLayer, {what, func(t tools, r *framework.RootfsTar) error {
				r.HostFile(filepath.Join(t.moduleK8, "test/images", what, "html", what+".jpg"), what+".jpg", 0o644)
				r.HostFile(filepath.Join(t.moduleK8, "test/images", what, "html/data.json"), "data.json", 0o644)
				return nil
			}}},
			config: c,
		}
	}
	nginx := image{
		names:  []string{e2eRegistry + "/nginx:1.27.0-2", e2eRegistry + "/nginx:1.28.0-2"},
		layers: []layer{{"nginx", nginxRootfs}},
		config: v1.Config{
			Entrypoint:   []string{"/docker-entrypoint.sh"},
			Cmd:          []string{"nginx", "-g", "daemon off;"},
			Env:          []string{alpinePath},
			ExposedPorts: ports(80),
			StopSignal:   "SIGQUIT",
		},
	}
	return []image{
		{
			names:  []string{e2eRegistry + "/agnhost:2.66.1", e2eRegistry + "/agnhost:2.55"},
			layers: []layer{agnhostLayer},
			config: agnhostConfig,
		},
		{
			names:  []string{e2eRegistry + "/busybox:1.37.0-2", e2eRegistry + "/busybox:1.36.1-1"},
			layers: []layer{{"busybox", busyboxRootfs}},
			config: v1.Config{Cmd: []string{"sh"}, Env: []string{alpinePath}},
		},
		{
			names: []string{gcRegistry + "/pause:3.10.2"},
			layers: []layer{{"pause", func(t tools, r *framework.RootfsTar) error {
				r.HostFile(t.pause, "pause", 0o755)
				return nil
			}}},
			config: v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		},
		nginx,
		webserver("kitten"),
		webserver("nautilus"),
		{
			names: []string{e2eRegistry + "/nonewprivs:1.4"},
			layers: []layer{{"alpine", alpineRootfs}, {"nnp", func(t tools, r *framework.RootfsTar) error {
				r.HostFile(t.nnp, "usr/local/bin/nnp", 0o4755) // chmod +s
				return nil
			}}},
			config: v1.Config{Cmd: []string{"nnp"}, Env: []string{alpinePath}},
		},
		{
			names:  []string{e2eRegistry + "/nonroot:1.5"},
			layers: []layer{{"alpine", alpineRootfs}},
			config: v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{alpinePath}, User: "1234"},
		},
		// The aggregator spec's pod: sample-apiserver (upstream: Alpine
		// plus /sample-apiserver) and an etcd beside it
		// (/usr/local/bin/etcd, run with a command of the spec's).
		{
			names: []string{e2eRegistry + "/sample-apiserver:1.29.2"},
			layers: []layer{{"alpine", alpineRootfs}, {"sample-apiserver", func(t tools, r *framework.RootfsTar) error {
				r.HostFile(t.sampleAPIServer, "sample-apiserver", 0o755)
				return nil
			}}},
			config: v1.Config{Entrypoint: []string{"/sample-apiserver"}, Env: []string{alpinePath}},
		},
		{
			names: []string{gcRegistry + "/etcd:3.7.0-0"},
			layers: []layer{{"alpine", alpineRootfs}, {"etcd", func(t tools, r *framework.RootfsTar) error {
				r.HostFile(t.etcd, "usr/local/bin/etcd", 0o755)
				return nil
			}}},
			config: v1.Config{Env: []string{alpinePath}, ExposedPorts: ports(2379, 2380)},
		},
		{
			names:  []string{e2eRegistry + "/glibc-dns-testing:2.1.1"},
			layers: []layer{{"glibc-dns-testing", glibcDNSRootfs}},
			config: v1.Config{Cmd: []string{"bash"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		},
	}
}

func ports(ps ...int) map[string]struct{} {
	m := map[string]struct{}{}
	for _, p := range ps {
		m[fmt.Sprintf("%d/tcp", p)] = struct{}{}
	}
	return m
}

// writeImages writes every test image into one `docker save` archive, for
// `pocketkube images load`.
func writeImages(t tools, archive string) error {
	layerDir := filepath.Join(t.dir, "layers")
	if err := os.MkdirAll(layerDir, 0o755); err != nil {
		return err
	}
	layers := map[string]v1.Layer{}
	refs := map[name.Reference]v1.Image{}
	created := time.Now().UTC()
	for _, im := range testImages() {
		img := empty.Image
		for _, l := range im.layers {
			if layers[l.name] == nil {
				path := filepath.Join(layerDir, l.name+".tar")
				r, err := framework.NewRootfsTar(path)
				if err != nil {
					return err
				}
				err = l.write(t, r)
				if cerr := r.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return fmt.Errorf("layer %s: %w", l.name, err)
				}
				if layers[l.name], err = tarball.LayerFromFile(path); err != nil {
					return fmt.Errorf("layer %s: %w", l.name, err)
				}
			}
			var err error
			if img, err = mutate.AppendLayers(img, layers[l.name]); err != nil {
				return err
			}
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Created = "linux", runtime.GOARCH, v1.Time{Time: created}
		cf.Config = im.config
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		for _, n := range im.names {
			tag, err := name.NewTag(n)
			if err != nil {
				return err
			}
			refs[tag] = img
		}
	}
	tmp := archive + ".new"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		return fmt.Errorf("write %s: %w", archive, err)
	}
	return os.Rename(tmp, archive)
}

// The root filesystems. Each image gets busybox built by debian.sh (a
// shell and tools that behave as upstream busybox's do, see debian.sh),
// with an applet link in /bin for every applet, and /etc/passwd and
// /etc/group with the users of the image it stands in for.

const (
	alpinePasswd = "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/sbin/nologin\ndaemon:x:2:2:daemon:/sbin:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/:/sbin/nologin\n"
	alpineGroup = "root:x:0:root\nbin:x:1:root,bin,daemon\ndaemon:x:2:root,bin,daemon\nnobody:x:65534:\n"
	// alpineOSRelease is alpine:3.21's /etc/os-release, the base of
	// agnhost and the images built on it (kitten, nautilus): the
	// ImageVolume spec reads it through an image volume.
	alpineOSRelease = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.21.3\nPRETTY_NAME=\"Alpine Linux v3.21\"\n" +
		"HOME_URL=\"https://alpinelinux.org/\"\nBUG_REPORT_URL=\"https://gitlab.alpinelinux.org/alpine/aports/-/issues\"\n"
)

// busybox adds /bin/busybox, an applet link in /bin for each applet
// whose name is not taken yet (a tool added before wins), and the usual
// top directories.
func busybox(t tools, r *framework.RootfsTar) error {
	for _, d := range []string{"bin", "sbin", "etc", "dev", "proc", "sys", "root", "home", "var", "usr/bin", "usr/sbin", "usr/local/bin"} {
		r.Dir(d, 0o755)
	}
	r.Dir("tmp", 0o1777)
	r.HostFile(t.busybox, "bin/busybox", 0o755)
	list, err := exec.Command(t.busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", t.busybox, err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			r.Symlink("bin/"+applet, "busybox")
		}
	}
	return nil
}

// busyboxRootfs is e2e-test-images/busybox: upstream's busybox image,
// busybox alone with the users of its /etc/passwd.
func busyboxRootfs(t tools, r *framework.RootfsTar) error {
	r.File("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"+
		"bin:x:2:2:bin:/bin:/bin/false\nsys:x:3:3:sys:/dev:/bin/false\nsync:x:4:100:sync:/bin:/bin/sync\n"+
		"mail:x:8:8:mail:/var/spool/mail:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\n"+
		"operator:x:37:37:Operator:/var:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n"))
	r.File("etc/group", 0o644, []byte("root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\n"+
		"wheel:x:10:root\nmail:x:8:\nwww-data:x:33:\noperator:x:37:\nstaff:x:50:\nusers:x:100:\nnogroup:x:65534:\n"))
	return busybox(t, r)
}

// alpineRootfs stands in for an Alpine base: busybox and Alpine's users.
func alpineRootfs(t tools, r *framework.RootfsTar) error {
	r.File("etc/os-release", 0o644, []byte(alpineOSRelease))
	r.File("etc/passwd", 0o644, []byte(alpinePasswd))
	r.File("etc/group", 0o644, []byte(alpineGroup))
	return busybox(t, r)
}

// hostTools adds host binaries (each found on PATH, in the image as
// dir/name) with their shared libraries, and /etc/nsswitch.conf for
// glibc's resolver.
func hostTools(r *framework.RootfsTar, dir string, names ...string) error {
	for _, n := range names {
		src, err := exec.LookPath(n)
		if err != nil {
			return fmt.Errorf("%w (debian.sh installs it)", err)
		}
		image := strings.TrimSuffix(n, ".openbsd")
		r.Binary(src, dir+"/"+image)
	}
	r.File("etc/nsswitch.conf", 0o644, []byte("passwd: files\ngroup: files\nhosts: files dns\n"))
	return nil
}

// agnhostRootfs is e2e-test-images/agnhost (test/images/agnhost/Dockerfile):
// /agnhost and the agnhost-2 link, porter's certificate, /uploads, the
// user and group the SupplementalGroups specs look for, and the tools
// the specs run in it with sh -c (Alpine's bind-tools, curl,
// netcat-openbsd, iproute2, bash, socat, util-linux-misc), here Debian's.
func agnhostRootfs(t tools, r *framework.RootfsTar) error {
	r.File("etc/os-release", 0o644, []byte(alpineOSRelease))
	r.File("etc/passwd", 0o644, []byte(alpinePasswd+"user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"))
	r.File("etc/group", 0o644, []byte(alpineGroup+"user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"))
	r.Dir("home/user-defined-in-image", 0o755)
	r.HostFile(t.agnhost, "agnhost", 0o755)
	r.Symlink("agnhost-2", "agnhost")
	r.Dir("uploads", 0o755)
	r.HostFile(filepath.Join(t.moduleK8, "test/images/agnhost/porter/localhost.crt"), "localhost.crt", 0o644)
	r.HostFile(filepath.Join(t.moduleK8, "test/images/agnhost/porter/localhost.key"), "localhost.key", 0o644)
	r.Binary("/usr/bin/bash", "bin/bash")
	if err := hostTools(r, "usr/bin", "curl", "nc.openbsd", "dig", "nslookup", "host", "socat", "getent", "ipcs", "ss", "ip"); err != nil {
		return err
	}
	return busybox(t, r)
}

// glibcDNSRootfs is e2e-test-images/glibc-dns-testing: Debian (dash as
// /bin/sh, bash) with dnsutils and glibc's getent.
func glibcDNSRootfs(t tools, r *framework.RootfsTar) error {
	r.File("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"+
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"))
	r.File("etc/group", 0o644, []byte("root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"))
	r.Binary("/usr/bin/dash", "bin/sh")
	r.Binary("/usr/bin/bash", "bin/bash")
	if err := hostTools(r, "usr/bin", "dig", "nslookup", "host", "getent"); err != nil {
		return err
	}
	return busybox(t, r)
}

// nginxRootfs is e2e-test-images/nginx (nginx:1.27-alpine): Debian's
// nginx serving /usr/share/nginx/html on :80 as the nginx user (101),
// logging to the container's stdout and stderr, and busybox.
func nginxRootfs(t tools, r *framework.RootfsTar) error {
	r.File("etc/passwd", 0o644, []byte(alpinePasswd+"nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n"))
	r.File("etc/group", 0o644, []byte(alpineGroup+"nginx:x:101:nginx\n"))
	r.Binary(filepath.Join(t.nginxRoot, "usr/sbin/nginx"), "usr/sbin/nginx")
	r.HostFile(filepath.Join(t.nginxRoot, "etc/nginx/mime.types"), "etc/nginx/mime.types", 0o644)
	r.File("etc/nginx/nginx.conf", 0o644, []byte(nginxConf))
	r.File("usr/share/nginx/html/index.html", 0o644, []byte(nginxIndex))
	r.File("docker-entrypoint.sh", 0o755, []byte("#!/bin/sh\nexec \"$@\"\n"))
	r.Dir("var/log/nginx", 0o755)
	r.Symlink("var/log/nginx/access.log", "/dev/stdout")
	r.Symlink("var/log/nginx/error.log", "/dev/stderr")
	r.Dir("var/lib/nginx", 0o755)
	r.Dir("var/cache/nginx", 0o755)
	r.Dir("run", 0o755)
	return busybox(t, r)
}

const nginxConf = `user  nginx;
worker_processes  auto;
error_log  /var/log/nginx/error.log notice;
pid        /run/nginx.pid;
events {
    worker_connections  1024;
}
http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;
    access_log  /var/log/nginx/access.log;
    sendfile        on;
    keepalive_timeout  65;
    server {
        listen       80;
        server_name  localhost;
        location / {
            root   /usr/share/nginx/html;
            index  index.html index.htm;
        }
        error_page   500 502 503 504  /50x.html;
    }
}
`

const nginxIndex = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
</body>
</html>
`
