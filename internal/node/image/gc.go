package image

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Kubelet's image GC defaults (pkg/kubelet/apis/config/v1beta1 and
// pkg/kubelet/images).
const (
	// DefaultGCHighThresholdPercent is imageGCHighThresholdPercent: the
	// disk usage of the store's filesystem at which GarbageCollect frees
	// space.
	DefaultGCHighThresholdPercent = 85
	// DefaultGCLowThresholdPercent is imageGCLowThresholdPercent: the
	// usage GarbageCollect frees space down to.
	DefaultGCLowThresholdPercent = 80
	// DefaultGCMinAge is imageMinimumGCAge: an image the node first saw
	// less long ago is never collected.
	DefaultGCMinAge = 2 * time.Minute
	// DefaultGCPeriod is kubelet's ImageGCPeriod.
	DefaultGCPeriod = 5 * time.Minute
)

// GCConfig configures a GC; zero fields take kubelet's defaults.
type GCConfig struct {
	// HighThresholdPercent and LowThresholdPercent are kubelet's
	// --image-gc-high-threshold and --image-gc-low-threshold.
	HighThresholdPercent, LowThresholdPercent int
	// MinAge is kubelet's --minimum-image-ttl-duration; zero means
	// DefaultGCMinAge, negative no minimum age.
	MinAge time.Duration
	// PodImages returns the images the node's pods name (their
	// containers' image fields, as the pods give them), which are in use
	// even while no container of them runs (a container between
	// restarts). nil means none: only mounted root filesystems are in use.
	PodImages func() ([]string, error)
	// PostGC, when set, is called after each collection that removed
	// images with the IDs of the images left and when the collection
	// began (kubelet's PostImageGCHook: the image pull manager forgets
	// the records of removed images).
	PostGC func(ctx context.Context, remainingImageIDs []string, gcStart time.Time)
	// Clock defaults to the real clock.
	Clock clock.Clock
}

// GC is kubelet's image garbage collector (pkg/kubelet/images
// image_gc_manager.go) over a Store: it removes the images no container
// uses, least recently used first, never one it first saw less than
// MinAge ago. GarbageCollect does so when the store's filesystem is more
// than HighThresholdPercent full, down to LowThresholdPercent;
// DeleteUnusedImages, which the eviction manager calls under imagefs
// pressure before it evicts pods, removes every unused image.
type GC struct {
	store *Store
	cfg   GCConfig

	mu sync.Mutex
	// records are the images seen, by ID, with when the node first saw
	// them and last saw them in use (kubelet keeps them in memory too: a
	// restart makes every image new again).
	records map[string]*gcRecord
}

type gcRecord struct {
	firstDetected, lastUsed time.Time
}

// NewGC checks cfg and fills in kubelet's defaults.
func NewGC(store *Store, cfg GCConfig) (*GC, error) {
	if cfg.HighThresholdPercent == 0 {
		cfg.HighThresholdPercent = DefaultGCHighThresholdPercent
	}
	if cfg.LowThresholdPercent == 0 {
		cfg.LowThresholdPercent = DefaultGCLowThresholdPercent
	}
	if cfg.MinAge == 0 {
		cfg.MinAge = DefaultGCMinAge
	} else if cfg.MinAge < 0 {
		cfg.MinAge = 0
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	// kubelet's ValidateKubeletConfiguration and NewImageGCManager.
	if cfg.HighThresholdPercent < 0 || cfg.HighThresholdPercent > 100 {
		return nil, fmt.Errorf("invalid HighThresholdPercent %d, must be in range [0-100]", cfg.HighThresholdPercent)
	}
	if cfg.LowThresholdPercent < 0 || cfg.LowThresholdPercent > 100 {
		return nil, fmt.Errorf("invalid LowThresholdPercent %d, must be in range [0-100]", cfg.LowThresholdPercent)
	}
	if cfg.LowThresholdPercent > cfg.HighThresholdPercent {
		return nil, fmt.Errorf("LowThresholdPercent %d can not be higher than HighThresholdPercent %d", cfg.LowThresholdPercent, cfg.HighThresholdPercent)
	}
	return &GC{store: store, cfg: cfg, records: map[string]*gcRecord{}}, nil
}

// Run calls GarbageCollect every period (DefaultGCPeriod when 0) until
// ctx is done, as kubelet's StartGarbageCollection.
func (g *GC) Run(ctx context.Context, period time.Duration) {
	if period == 0 {
		period = DefaultGCPeriod
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := g.GarbageCollect(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "Image garbage collection failed")
		}
	}, period)
}

// GarbageCollect frees space down to LowThresholdPercent when the store's
// filesystem is more than HighThresholdPercent full, with kubelet's
// messages; it returns kubelet's error when the unused images do not
// free enough.
func (g *GC) GarbageCollect(ctx context.Context) error {
	now := g.cfg.Clock.Now()
	images, err := g.evictionOrder(ctx, now)
	if err != nil {
		return err
	}
	capacity, available, err := fsSpace(g.store.Dir())
	if err != nil {
		return err
	}
	if available > capacity {
		klog.FromContext(ctx).Info("Availability is larger than capacity", "available", available, "capacity", capacity)
		available = capacity
	}
	if capacity == 0 {
		return errors.New("invalid capacity 0 on image filesystem")
	}
	usagePercent := 100 - int(available*100/capacity)
	if usagePercent < g.cfg.HighThresholdPercent {
		return nil
	}
	amountToFree := capacity*int64(100-g.cfg.LowThresholdPercent)/100 - available
	klog.FromContext(ctx).Info("Disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold",
		"usage", usagePercent, "highThreshold", g.cfg.HighThresholdPercent, "amountToFree", amountToFree, "lowThreshold", g.cfg.LowThresholdPercent)
	freed, err := g.freeSpace(ctx, amountToFree, now, images)
	g.runPostGC(ctx, now)
	if err != nil {
		return err
	}
	if freed < amountToFree {
		// kubelet's message, capital and full stop included.
		return fmt.Errorf("Failed to garbage collect required amount of images. Attempted to free %d bytes, but only found %d bytes eligible to free.", amountToFree, freed)
	}
	return nil
}

// DeleteUnusedImages removes every image no container uses that is at
// least MinAge old, then the blobs no image references: kubelet's
// ImageGC for the eviction manager, called under imagefs pressure before
// any pod is evicted.
func (g *GC) DeleteUnusedImages(ctx context.Context) error {
	klog.FromContext(ctx).Info("Attempting to delete unused images")
	now := g.cfg.Clock.Now()
	images, err := g.evictionOrder(ctx, now)
	if err != nil {
		return err
	}
	_, err = g.freeSpace(ctx, math.MaxInt64, now, images)
	g.runPostGC(ctx, now)
	return errors.Join(err, g.store.Collect(ctx))
}

// runPostGC calls PostGC with the images left, as kubelet's
// runPostGCHooks; a store it cannot list skips the hook (nothing is
// forgotten by mistake).
func (g *GC) runPostGC(ctx context.Context, gcStart time.Time) {
	if g.cfg.PostGC == nil {
		return
	}
	imgs, err := g.store.List(ctx)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Image garbage collection: cannot list the images left for the post-GC hooks")
		return
	}
	ids := make([]string, 0, len(imgs))
	for _, img := range imgs {
		ids = append(ids, img.ID)
	}
	g.cfg.PostGC(ctx, ids, gcStart)
}

// gcCandidate is an image with what GC knows of it.
type gcCandidate struct {
	Image
	gcRecord
	inUse bool
}

// evictionOrder lists the store's images (one per ID), records the ones
// in use now, and sorts them least recently used first, then oldest
// first (kubelet's imagesInEvictionOrder).
func (g *GC) evictionOrder(ctx context.Context, now time.Time) ([]gcCandidate, error) {
	imgs, err := g.store.List(ctx)
	if err != nil {
		return nil, err
	}
	used, err := g.store.inUse()
	if err != nil {
		return nil, err
	}
	podRefs := map[string]bool{}
	if g.cfg.PodImages != nil {
		refs, err := g.cfg.PodImages()
		if err != nil {
			return nil, fmt.Errorf("list the images of the node's pods: %w", err)
		}
		for _, r := range refs {
			podRefs[r] = true
			if n, err := Normalize(r); err == nil {
				podRefs[n] = true
			}
		}
	}
	byID := map[string]*gcCandidate{}
	for _, img := range imgs {
		c := byID[img.ID]
		if c == nil {
			c = &gcCandidate{Image: img}
			byID[img.ID] = c
		}
		if len(used[strings.TrimPrefix(img.ID, "sha256:")]) > 0 || podRefs[img.Name] || podRefs[img.RepoDigest()] ||
			podRefs[img.ID] || podRefs[strings.TrimPrefix(img.ID, "sha256:")] {
			c.inUse = true
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]gcCandidate, 0, len(byID))
	for id, c := range byID {
		r := g.records[id]
		if r == nil {
			r = &gcRecord{firstDetected: now}
			g.records[id] = r
		}
		if c.inUse {
			r.lastUsed = now
		}
		c.gcRecord = *r
		out = append(out, *c)
	}
	for id := range g.records {
		if byID[id] == nil {
			delete(g.records, id)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].lastUsed.Equal(out[j].lastUsed) {
			return out[i].lastUsed.Before(out[j].lastUsed)
		}
		if !out[i].firstDetected.Equal(out[j].firstDetected) {
			return out[i].firstDetected.Before(out[j].firstDetected)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// freeSpace removes unused images in order until bytesToFree bytes are
// free, and returns what the removals freed on the filesystem (kubelet's
// freeSpace counts image sizes; the store's layers are shared, so the
// filesystem's own count is the one that tells).
func (g *GC) freeSpace(ctx context.Context, bytesToFree int64, now time.Time, images []gcCandidate) (int64, error) {
	logger := klog.FromContext(ctx)
	var freed int64
	var errs []error
	for _, img := range images {
		if freed >= bytesToFree {
			break
		}
		// In use now: lastUsed was set to now.
		if img.inUse || !img.lastUsed.Before(now) {
			continue
		}
		if now.Sub(img.firstDetected) < g.cfg.MinAge {
			logger.V(5).Info("Image's age is less than the policy's minAge, not eligible for garbage collection", "imageID", img.ID, "age", now.Sub(img.firstDetected), "minAge", g.cfg.MinAge)
			continue
		}
		_, before, err := fsSpace(g.store.Dir())
		if err != nil {
			return freed, err
		}
		logger.Info("Removing image to free bytes", "imageID", img.ID, "size", img.Size, "runtimeHandler", "")
		if err := g.store.Remove(ctx, img.ID); err != nil {
			// An image a container started to use since the list
			// stays; kubelet goes on with the next image too.
			errs = append(errs, err)
			continue
		}
		g.mu.Lock()
		delete(g.records, img.ID)
		g.mu.Unlock()
		_, after, err := fsSpace(g.store.Dir())
		if err != nil {
			return freed, err
		}
		if after > before {
			freed += after - before
		}
	}
	if len(errs) > 0 {
		return freed, fmt.Errorf("wanted to free %d bytes, but freed %d bytes space with errors in image deletion: %w", bytesToFree, freed, errors.Join(errs...))
	}
	return freed, nil
}

// fsSpace returns the capacity and the available bytes (f_bavail) of
// dir's filesystem, as cadvisor reports imagefs.
func fsSpace(dir string) (capacity, available int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize, nil
}
