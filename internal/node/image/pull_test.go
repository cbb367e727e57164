package image

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/klog/v2/ktesting"
)

// testRegistry serves an in-process registry holding test/busybox:v1 (an
// image) and test/multi:v1 (an index with this platform and another).
func testRegistry(t *testing.T) (host string, bb v1.Image, srv *httptest.Server) {
	t.Helper()
	srv = httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host = strings.TrimPrefix(srv.URL, "http://")
	bb = imageOf(t, []string{"sh"}, busyboxRootfs(t), buildTar(t, entry{name: "etc/hostname", body: "pulled\n"}))
	if err := remote.Write(mustRef(t, host+"/test/busybox:v1"), bb); err != nil {
		t.Fatal(err)
	}
	other := imageOf(t, []string{"other"}, buildTar(t, entry{name: "other", body: "arch"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "riscv64"}}},
		mutate.IndexAddendum{Add: bb, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	if err := remote.WriteIndex(mustRef(t, host+"/test/multi:v1"), idx); err != nil {
		t.Fatal(err)
	}
	return host, bb, srv
}

func TestPull(t *testing.T) {
	host, bb, srv := testRegistry(t)
	wantDigest, _ := bb.Digest()
	wantID, _ := bb.ConfigName()
	layers, _ := bb.Layers()
	for _, ref := range []string{host + "/test/busybox:v1", host + "/test/multi:v1", host + "/test/busybox@" + wantDigest.String()} {
		t.Run(ref, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			s, err := Open(ctx, Config{Dir: t.TempDir(), Transport: srv.Client().Transport})
			if err != nil {
				t.Fatal(err)
			}
			var progress bytes.Buffer
			img, err := s.Pull(ctx, ref, PullOptions{Progress: &progress})
			if err != nil {
				t.Fatal(err)
			}
			if img.Digest != wantDigest.String() || img.ID != wantID.String() || img.Config.Cmd[0] != "sh" {
				t.Errorf("Pull = %+v, want digest %s, ID %s", img, wantDigest, wantID)
			}
			for _, l := range layers {
				d, _ := l.Digest()
				if line := d.Hex[:12] + ": Pull complete\n"; !strings.Contains(progress.String(), line) {
					t.Errorf("progress %q lacks %q", progress.String(), line)
				}
			}
			got, err := s.Get(ctx, ref)
			if err != nil || got.Digest != img.Digest {
				t.Errorf("Get after Pull = %+v, %v", got, err)
			}
			rootfs, err := s.Rootfs(ctx, img)
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, rootfs, "etc/hostname", "pulled\n", 0o644)
			checkLink(t, rootfs, "bin/sh", "busybox")

			progress.Reset()
			if _, err := s.Pull(ctx, ref, PullOptions{Progress: &progress}); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(progress.String(), "Pull complete") || !strings.Contains(progress.String(), "Already exists") {
				t.Errorf("second pull downloaded layers again:\n%s", progress.String())
			}
			if list, _ := s.List(ctx); len(list) != 1 {
				t.Errorf("List after second pull = %+v", list)
			}
		})
	}
}

func TestPullErrors(t *testing.T) {
	host, _, srv := testRegistry(t)
	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
	}))
	t.Cleanup(deny.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	tests := []struct {
		name    string
		ref     string
		want    error
		wantMsg string
	}{
		{"missing tag", host + "/test/busybox:nope", ErrNotFound,
			`failed to pull and unpack image "` + host + `/test/busybox:nope": failed to resolve reference "` + host + `/test/busybox:nope": ` + host + `/test/busybox:nope: not found`},
		{"missing repository", host + "/nope", ErrNotFound, "not found"},
		{"unauthorized", strings.TrimPrefix(deny.URL, "http://") + "/private/x:v1", ErrUnauthorized, "pull access denied"},
		{"unreachable", closed + "/x:v1", ErrUnreachable, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			s, err := Open(ctx, Config{Dir: t.TempDir(), Transport: srv.Client().Transport})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Pull(ctx, tt.ref, PullOptions{})
			t.Logf("Pull error: %v", err)
			var perr *PullError
			if !errors.Is(err, tt.want) || !errors.As(err, &perr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Pull err = %v, want %v with %q", err, tt.want, tt.wantMsg)
			}
			for _, other := range []error{ErrNotFound, ErrUnauthorized, ErrUnreachable} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("Pull err %v also is %v", err, other)
				}
			}
			if list, _ := s.List(ctx); len(list) != 0 {
				t.Errorf("List after failed pull = %v", list)
			}
		})
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
