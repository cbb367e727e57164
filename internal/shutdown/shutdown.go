// Package shutdown stops what a part of pocketkube started within the
// time a stop has: Ctrl-C gives `up` 10 s in all.
package shutdown

import (
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// InformerWait is how long a stop waits for a part's informers.
const InformerWait = time.Second

// Informers stops the factories' informers, whose stop channel is closed
// by now, and waits for them at most limit. After the API server was
// unreachable, client-go's reflector can be sleeping out a watch-list
// back-off that does not watch the stop channel (tools/cache/reflector.go,
// watchList: up to 30 s); a stop must not wait for that sleep. Such an
// informer returns once its sleep ends, or with the process.
func Informers(logger klog.Logger, limit time.Duration, factories ...interface{ Shutdown() }) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, f := range factories {
			wg.Go(f.Shutdown)
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(limit):
		logger.Info("Informers still stopping; not waiting for them", "waited", limit)
	}
}
