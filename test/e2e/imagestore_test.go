//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestImageLoadRefusesPoisonedBlob is issue 13 item 5: an archive whose
// layer blob claims the digest of another image's layer is refused by
// `images load` with an error naming the digest, whether it comes before
// or after the genuine image, and pods of the genuine image run its own
// files. Before, the archive was loaded, and its layer stayed in the store
// under the genuine image's digest, where a later pull of that image
// reused it (and failed its diff ID check).
func TestImageLoadRefusesPoisonedBlob(t *testing.T) {
	t.Parallel()
	const (
		goodName = "docker.io/library/poison-good-test:v1"
		evilName = "docker.io/library/poison-evil-test:v1"
	)
	ctx := t.Context()
	c := shared.Client(t)
	ns := framework.NewNamespace(t, c, "image-poison-")
	dir := t.TempDir()
	images := func(args ...string) (string, error) {
		return framework.Run(ctx, nil, Binary, append([]string{"images", "--data-dir", shared.DataDir}, args...)...)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		c.CoreV1().Pods(ns).Delete(ctx, "good", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
			_, err := framework.Run(ctx, nil, Binary, "images", "--data-dir", shared.DataDir, "rm", goodName)
			return err == nil || strings.Contains(err.Error(), "not found"), nil
		})
	})

	// Both images are busybox with a marker file /which.
	rootfsWith := func(marker string) string {
		t.Helper()
		content := filepath.Join(dir, marker)
		if err := os.WriteFile(content, []byte(marker+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, marker+".tar")
		if err := framework.BusyboxTar(p, map[string]string{"/which": content}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := ociImage(t, rootfsWith("good"))
	goodArchive := filepath.Join(dir, "good-oci.tar")
	writeOCIArchive(t, goodArchive, map[string]v1.Image{goodName: good})
	layers, err := good.Layers()
	if err != nil {
		t.Fatal(err)
	}
	goodLayer, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	evilLayer, err := os.ReadFile(rootfsWith("evil"))
	if err != nil {
		t.Fatal(err)
	}
	poisoned := filepath.Join(dir, "poisoned-oci.tar")
	writePoisonedArchive(t, poisoned, evilName, evilLayer, goodLayer)

	loadPoisoned := func(when string) {
		t.Helper()
		out, err := images("load", "-i", poisoned)
		if err == nil {
			t.Fatalf("images load of the poisoned archive %s the genuine image succeeded: %s", when, out)
		}
		if msg := err.Error(); !strings.Contains(msg, "does not match its digest") || !strings.Contains(msg, goodLayer.String()) {
			t.Errorf("images load of the poisoned archive %s the genuine image: %v; want it to name the digest it does not match", when, err)
		}
		if out, err := images("list"); err != nil || strings.Contains(out, "poison-evil-test") {
			t.Errorf("images list after the refused load: %q, %v", out, err)
		}
	}
	loadPoisoned("before")
	if out, err := images("load", "-i", goodArchive); err != nil {
		t.Fatalf("images load of the genuine image: %v: %s", err, out)
	}
	loadPoisoned("after")

	framework.RunPods(t, c, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "main", Image: goodName, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"},
			}},
		},
	})
	if out, err := shared.PodExec(ctx, ns, "good", "cat", "/which"); err != nil || out != "good\n" {
		t.Errorf("pod of the genuine image: cat /which = %q, %v; want \"good\"", out, err)
	}
}

// TestImagePasswdIsReadInsideTheImage is issue 13 item 5: an image whose
// /etc/passwd and /etc/group are symlinks to absolute paths must have them
// resolved inside the image, as the container sees them, never on the
// host. The host files here name uid 4242 with primary group 4343 and
// supplementary group 4444; the image has no such files, so a pod running
// as uid 4242 gets gid 0 and no other groups. Before, the node read the
// host's files and gave the pod the host's groups.
func TestImagePasswdIsReadInsideTheImage(t *testing.T) {
	t.Parallel()
	const name = "passwd-link-test"
	ctx := t.Context()
	c := shared.Client(t)
	ns := framework.NewNamespace(t, c, "image-passwd-")
	dir := t.TempDir()
	hostPasswd, hostGroup := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(hostPasswd, []byte("hostuser:x:4242:4343::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostGroup, []byte("hostgroup:x:4444:hostuser\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(dir, "rootfs.tar")
	r, err := framework.NewRootfsTar(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	r.Symlink("etc/passwd", hostPasswd)
	r.Symlink("etc/group", hostGroup)
	r.Busybox()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shared.ImportImage(ctx, name, tarPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		c.CoreV1().Pods(ns).Delete(ctx, "user", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
			_, err := framework.Run(ctx, nil, Binary, "images", "--data-dir", shared.DataDir, "rm", name)
			return err == nil || strings.Contains(err.Error(), "not found"), nil
		})
	})
	framework.RunPods(t, c, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "user", Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			SecurityContext:               &corev1.PodSecurityContext{RunAsUser: new(int64(4242))},
			Containers: []corev1.Container{{
				Name: "main", Image: name, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"},
			}},
		},
	})
	out, err := shared.PodExec(ctx, ns, "user", "id", "-G")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out); got != "0" {
		t.Errorf("id -G of uid 4242 = %q, want \"0\" (the image has no /etc/passwd); 4343 and 4444 are the host files' groups", got)
	}
}

// ociImage is a linux/GOARCH image whose one layer is the root filesystem
// tar rootfs (gzip-compressed), running sh.
func ociImage(t *testing.T, rootfs string) v1.Image {
	t.Helper()
	l, err := tarball.LayerFromFile(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = []string{"sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeOCIArchive writes imgs as an OCI image layout in the tar file
// path, each named by containerd's annotation, as `ctr images export` does.
func writeOCIArchive(t *testing.T, path string, imgs map[string]v1.Image) {
	t.Helper()
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for n, img := range imgs {
		if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
			"io.containerd.image.name": n, "org.opencontainers.image.ref.name": n,
		})); err != nil {
			t.Fatal(err)
		}
	}
	tarTree(t, dir, path)
}

// writePoisonedArchive writes an OCI archive of the image name whose only
// layer is the uncompressed tar layer, stored under the digest layerClaim:
// an archive that lies about its layer's digest. The config's diff ID is
// the layer's own, so the image itself is consistent.
func writePoisonedArchive(t *testing.T, path, name string, layer []byte, layerClaim v1.Hash) {
	t.Helper()
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	blob := func(data []byte, claim *v1.Hash) v1.Descriptor {
		h, size, err := v1.SHA256(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if claim != nil {
			h = *claim
		}
		if err := os.WriteFile(filepath.Join(blobs, h.Hex), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{Digest: h, Size: size}
	}
	marshal := func(v any) []byte {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	diffID, _, err := v1.SHA256(bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	cfg := blob(marshal(v1.ConfigFile{
		OS: "linux", Architecture: runtime.GOARCH, Config: v1.Config{Cmd: []string{"sh"}},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
	}), nil)
	cfg.MediaType = types.OCIConfigJSON
	l := blob(layer, &layerClaim)
	l.MediaType = types.OCIUncompressedLayer
	man := blob(marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: []v1.Descriptor{l}}), nil)
	man.MediaType = types.OCIManifestSchema1
	man.Annotations = map[string]string{"io.containerd.image.name": name}
	index := marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{man}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tarTree(t, dir, path)
}

// tarTree writes the tree dir as the tar file path.
func tarTree(t *testing.T, dir, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
