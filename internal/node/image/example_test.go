package image_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/pocketkube/pocketkube/internal/node/image"
)

// Example imports a root filesystem tarball, as `pocketkube images import`
// does, and finds the directory a container of the image would use as its
// overlayfs lower directory.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "images")
	defer os.RemoveAll(dir)
	s, err := image.Open(ctx, image.Config{Dir: filepath.Join(dir, "images")})
	if err != nil {
		panic(err)
	}
	// A root filesystem: busybox's files, made with tar.
	tarball, _ := exec.Command("tar", "-C", "/bin", "-c", "busybox").Output()
	f, _ := os.CreateTemp(dir, "rootfs-*.tar")
	f.Write(tarball)
	f.Seek(0, 0)
	defer f.Close()

	img, err := s.Import(ctx, "busybox:local", f, image.ImportOptions{Cmd: []string{"/busybox", "sh"}})
	if err != nil {
		panic(err)
	}
	found, _ := s.Get(ctx, "busybox:local")
	rootfs, _ := s.Rootfs(ctx, found)
	_, err = os.Stat(filepath.Join(rootfs, "busybox"))
	fmt.Println(img.Name, found.ID == img.ID, err == nil)
	// Output: docker.io/library/busybox:local true true
}
