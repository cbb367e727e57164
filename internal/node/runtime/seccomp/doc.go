// Package seccomp is containerd's default seccomp profile, the one its CRI
// plugin gives a container whose seccompProfile is RuntimeDefault:
// [DefaultProfile] builds it for a spec whose capabilities are already set
// (syscalls such as mount, unshare and bpf are allowed only with the
// capability that governs them) and for this machine's architecture and
// kernel.
//
// The code is containerd's contrib/seccomp (v2.4.2), copied rather than
// imported: that package pulls in containerd's pkg/oci and much of the
// containerd/v2 module (content store, images, platforms), and its go.mod
// raises this module's go directive to 1.26.6 and otel to v1.46.0.
// default.go and kernel_linux.go say what was changed; a containerd
// update means copying both files again and refreshing the golden
// profile of the runtime's tests (internal/node/runtime/testdata).
package seccomp
