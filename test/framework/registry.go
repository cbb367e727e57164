package framework

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry is go-containerregistry's in-memory registry behind HTTP basic
// auth, as a private registry (registry:2 with htpasswd) answers: 401 with
// a Basic challenge without the right credentials. Without a user it
// serves everyone, as a public registry does.
type Registry struct {
	user, pass string
	next       http.Handler
	// Authorized counts the requests with the right credentials, Refused
	// the others.
	Authorized, Refused atomic.Int64
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if u, p, ok := req.BasicAuth(); r.user == "" || ok && u == r.user && p == r.pass {
		r.Authorized.Add(1)
		r.next.ServeHTTP(w, req)
		return
	}
	r.Refused.Add(1)
	w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}`+"\n")
}

// StartRegistry serves a registry (private when user is set) on a free
// loopback port until the test ends, and returns its host:port. Tests'
// images come from here: they never depend on a registry on the network.
func StartRegistry(t testing.TB, user, pass string) (string, *Registry) {
	t.Helper()
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	reg := &Registry{user: user, pass: pass, next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := &http.Server{Handler: reg}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), reg
}

// PushBusybox pushes an image of the host's busybox (BusyboxTar) with
// config to the registry reference image (host:port/repo:tag).
func PushBusybox(t testing.TB, image string, config v1.Config, auth authn.Authenticator) {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	if err := BusyboxTar(tarPath, nil); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, config)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}
