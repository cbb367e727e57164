// Package inroot reads files inside a directory tree that someone else
// controls: an image's root filesystem, a pod's volume. A path is resolved,
// with every symlink on the way, as if the tree's root were "/" (openat2's
// RESOLVE_IN_ROOT, or github.com/cyphar/filepath-securejoin's pathrs-lite
// where the kernel lacks it), so a link can point anywhere and still never
// lead out of the tree: /etc/passwd -> /etc/shadow opens the tree's own
// /etc/shadow, not the host's.
//
// Only regular files are opened, without blocking (a FIFO planted where a
// file is expected would hang the reader forever; a device may never end),
// and [ReadFile] reads at most a given number of bytes.
//
// Writing into such a tree, and bind mounts from it, are the volume and
// runtime packages' business.
package inroot
