// Package image is the node's image store: an OCI image layout in one
// directory (the node uses DATA_DIR/images) that holds images imported from
// root filesystem tarballs (`docker import`), loaded from `docker save` or
// OCI archives (`docker load`), or pulled from registries, plus one unpacked,
// shared root filesystem per image ID that the runtime uses as its overlayfs
// lower directory.
//
// # Basics
//
// [Open] a [Store] on a directory; [Store.Import], [Store.Load] and
// [Store.Pull] add images, [Store.List] and [Store.Get] read them,
// [Store.Remove] untags an image and garbage-collects whatever is no longer
// referenced, and [Store.Rootfs] returns an image's unpacked root filesystem.
// Names are normalised as Docker does ([Normalize]): "busybox" is
// "docker.io/library/busybox:latest".
//
// The directory holds:
//
//	oci-layout, index.json   the OCI image layout; index.json names every image
//	blobs/sha256/<hex>       content-addressed manifests, configs and layers
//	rootfs/<id>              unpacked root filesystems, one per image ID
//	tmp/                     private staging areas of running operations
//	locks/                   per-image unpack locks
//	lock                     the store's write lock (flock)
//
// # Concurrency
//
// Several processes may use one directory at once (`pocketkube up` and
// `pocketkube images import` in another shell). Every operation stages its
// work in a private directory under tmp/ without holding any lock, then takes
// an exclusive flock on DIR/lock only to move blobs and root filesystems into
// place and to replace index.json with a rename, so readers always see a
// whole index, old or new. Readers re-read index.json when its inode, size or
// mtime changed, so a long-running process sees images another process added.
//
// # Safety
//
// Archives, registries and layers are untrusted.
//
// Blobs are content-addressed and shared: the store keeps one blob per
// digest and one root filesystem per image ID (the config's digest), so a
// blob that merely claimed a digest would become the content of every image
// naming it. Every blob of an image is therefore hashed and compared with
// its digest (and every blob of a loaded OCI archive with the digest its
// path names) before anything is unpacked or committed; a mismatch fails
// the operation with a [*DigestError] naming the digest, and the store is
// left as it was. Pulled blobs are also checked while they are downloaded.
//
// Unpacking refuses entries with absolute paths or `..` components that
// climb out of the root, hardlinks whose targets lie outside it, writes
// through symlinks (placed by earlier entries or layers) whose relative
// targets climb out of it, the whiteout names containerd refuses (".wh.",
// ".wh..", ".wh..."), and device numbers that do not fit; absolute symlink
// targets are resolved inside the root, as the container will see them, and
// modification times are never set through a symlink a later entry put in
// a path. Device nodes are created only when running as root; trusted.*
// extended attributes (overlayfs's own) are ignored, as containerd ignores
// them. Every layer of an image is unpacked (and so checked) before the
// image is added, so a refused archive leaves the store as it was.
//
// Nothing is written that would leave less than 5% of the store's
// filesystem (at most 1 GiB) free: archives, blobs and every file of a
// layer are checked against the free space before they are written (a
// layer's files by the sizes their tar headers declare), and a write that
// does not fit fails with a [*DiskSpaceError] (ENOSPC); what the operation
// had written is removed with its staging directory.
//
// # Caveats
//
// The unpacked root filesystems are shared by every container of an image and
// must never be written to; mount them read-only or as an overlayfs lower
// directory. The store knows which ones containers use from the mount table:
// a root filesystem that is an overlayfs lower directory is kept when its
// image is replaced (an import or pull of its tag) until [Store.Collect] runs
// after its last container went, and [Store.Remove] refuses the last name of
// an image in use ([InUseError]). A root filesystem used any other way (a
// bind mount, a process's working directory) is not seen as in use.
//
// [GC] is kubelet's image garbage collector over a Store: above
// HighThresholdPercent of the filesystem it removes images that no
// container mounts and no pod names, least recently used first, down to
// LowThresholdPercent, never one it first saw less than MinAge ago; the
// eviction manager calls its DeleteUnusedImages under imagefs pressure.
// It learns use from the mount table when it looks, as kubelet from the
// runtime: what it knows of last use is lost with the process, so after a
// restart every image is new again.
//
// The store does not know who may use an image: the node agent asks
// internal/node/pullcreds, kubelet's image pull manager
// (KubeletEnsureSecretPulledImages), which records the credentials each
// image was pulled with and makes a pod that lacks them pull again with
// its own; GCConfig.PostGC lets it forget the images GC removed.
package image
