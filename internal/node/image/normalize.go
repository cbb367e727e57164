package image

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// Normalize returns ref in the fully qualified form Docker and kubelet use:
// "busybox" is "docker.io/library/busybox:latest", "foo/bar" is
// "docker.io/foo/bar:latest", "localhost:5000/x" keeps its registry, and a
// reference with a digest keeps the digest (and drops any tag, as Docker
// does). An invalid reference is an error that names it.
func Normalize(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return named.String(), nil
}

// Familiar returns the short form Docker prints for a normalised name:
// "docker.io/library/busybox:latest" is "busybox:latest".
func Familiar(name string) string {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return reference.FamiliarString(named)
}

// repository strips the tag or digest from a normalised name.
func repository(name string) string {
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	return name
}

// SplitName splits a normalised name into its repository and its tag, or
// "<none>" when it names a digest, as `crictl images` prints them.
func SplitName(name string) (repo, tag string) {
	repo = repository(name)
	tag = strings.TrimPrefix(strings.TrimPrefix(name, repo), ":")
	if tag == "" || strings.HasPrefix(tag, "@") {
		tag = "<none>"
	}
	return repo, tag
}
