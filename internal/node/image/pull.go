package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"k8s.io/klog/v2"
)

// PullOptions configures a pull.
type PullOptions struct {
	// Auth finds credentials for the registry; nil means anonymous.
	Auth authn.Keychain
	// Progress, if set, receives one line per layer as Docker prints it,
	// "<short digest>: Pull complete".
	Progress io.Writer
}

// Pull fetches ref (normalised first) from its registry, the linux/GOARCH
// image when ref names an index, checks and unpacks its layers, and adds it
// under its normalised name. Errors are *PullError values that wrap
// ErrNotFound, ErrUnauthorized or ErrUnreachable when the cause is one of
// those.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (Image, error) {
	norm, err := Normalize(ref)
	if err != nil {
		return Image{}, &PullError{Image: ref, Err: err}
	}
	logger := klog.FromContext(ctx).WithValues("image", norm)
	// name.ParseReference knows docker.io as index.docker.io; our names
	// stay Docker's.
	remoteRef, err := name.ParseReference(norm)
	if err != nil {
		return Image{}, &PullError{Image: norm, Err: err}
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(s.transport),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
		remote.WithUserAgent("pocketkube"),
	}
	if opts.Auth != nil {
		ropts = append(ropts, remote.WithAuthFromKeychain(opts.Auth))
	} else {
		ropts = append(ropts, remote.WithAuth(authn.Anonymous))
	}
	logger.V(2).Info("Pulling image")
	desc, err := remote.Get(remoteRef, ropts...)
	if err != nil {
		return Image{}, pullError(norm, "failed to resolve reference "+quote(norm), err)
	}
	img, err := desc.Image()
	if err != nil {
		return Image{}, pullError(norm, "failed to resolve reference "+quote(norm), err)
	}
	st, err := s.newStaging("pull")
	if err != nil {
		return Image{}, &PullError{Image: norm, Err: err}
	}
	defer st.close()
	lp := layout.Path(st.dir)
	layers, err := img.Layers()
	if err != nil {
		return Image{}, pullError(norm, "failed to read manifest", err)
	}
	for _, l := range layers {
		dgst, err := l.Digest()
		if err != nil {
			return Image{}, pullError(norm, "failed to read layer", err)
		}
		// A layer the store already holds is linked, not downloaded. If it
		// was collected meanwhile, the link fails and we download it.
		if err := os.Link(s.blobPath(dgst), filepath.Join(st.blobs, dgst.Hex)); err == nil {
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "%s: Already exists\n", dgst.Hex[:12])
			}
			continue
		}
		size, err := l.Size()
		if err != nil {
			return Image{}, pullError(norm, "failed to read layer", err)
		}
		if err := st.space.take(size, "layer "+dgst.String()); err != nil {
			return Image{}, &PullError{Image: norm, Err: err}
		}
		rc, err := l.Compressed()
		if err != nil {
			return Image{}, pullError(norm, "failed to copy "+dgst.String(), err)
		}
		if err := lp.WriteBlob(dgst, rc); err != nil {
			return Image{}, pullError(norm, "failed to copy "+dgst.String(), err)
		}
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "%s: Pull complete\n", dgst.Hex[:12])
		}
	}
	// The layers are in place: WriteImage adds the config and manifest.
	if err := lp.WriteImage(img); err != nil {
		return Image{}, pullError(norm, "failed to copy", err)
	}
	dgst, err := img.Digest()
	if err != nil {
		return Image{}, &PullError{Image: norm, Err: err}
	}
	mt, err := img.MediaType()
	if err != nil {
		return Image{}, &PullError{Image: norm, Err: err}
	}
	size, err := img.Size()
	if err != nil {
		return Image{}, &PullError{Image: norm, Err: err}
	}
	out, err := st.add(ctx, norm, dgst, mt, size)
	if err != nil {
		return Image{}, &PullError{Image: norm, Err: err}
	}
	if err := st.commit(ctx); err != nil {
		return Image{}, &PullError{Image: norm, Err: err}
	}
	logger.V(2).Info("Pulled image", "id", out.ID, "digest", out.Digest)
	return out, nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// pullError words err as containerd does, which is what kubelet shows.
func pullError(image, what string, err error) *PullError {
	var terr *transport.Error
	if errors.As(err, &terr) {
		codes := map[transport.ErrorCode]bool{}
		for _, d := range terr.Errors {
			codes[d.Code] = true
		}
		switch {
		case terr.StatusCode == http.StatusNotFound || codes[transport.ManifestUnknownErrorCode] || codes[transport.NameUnknownErrorCode]:
			return &PullError{Image: image, Reason: ErrNotFound, Err: fmt.Errorf("%s: %s: %w", what, image, ErrNotFound)}
		case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden ||
			codes[transport.UnauthorizedErrorCode] || codes[transport.DeniedErrorCode]:
			return &PullError{Image: image, Reason: ErrUnauthorized, Err: fmt.Errorf(
				"%s: pull access denied, repository does not exist or may require authorization: %w", what, err)}
		}
	}
	if isNetworkError(err) {
		return &PullError{Image: image, Reason: ErrUnreachable, Err: fmt.Errorf("%s: failed to do request: %w", what, err)}
	}
	return &PullError{Image: image, Err: fmt.Errorf("%s: %w", what, err)}
}

func isNetworkError(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &opErr), errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	}
	return strings.Contains(err.Error(), "connection refused")
}
