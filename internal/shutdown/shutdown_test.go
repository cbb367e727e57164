package shutdown

import (
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
)

// blockingFactory is an informer factory whose Shutdown returns when
// release is closed, as a reflector asleep in its back-off does.
type blockingFactory struct{ release chan struct{} }

func (f blockingFactory) Shutdown() { <-f.release }

func TestInformersBoundsTheWait(t *testing.T) {
	const limit = 200 * time.Millisecond
	tests := []struct {
		name    string
		blocked bool
		// The stop takes from min to max.
		min, max time.Duration
	}{
		{name: "informers stop at once", blocked: false, min: 0, max: limit / 2},
		{name: "an informer sleeps out its back-off", blocked: true, min: limit, max: limit + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			stuck := blockingFactory{release: make(chan struct{})}
			defer close(stuck.release)
			quick := blockingFactory{release: make(chan struct{})}
			close(quick.release)
			factories := []interface{ Shutdown() }{quick}
			if tt.blocked {
				factories = append(factories, stuck)
			}
			start := time.Now()
			Informers(logger, limit, factories...)
			took := time.Since(start)
			if took < tt.min || took > tt.max {
				t.Errorf("Informers took %s, want %s to %s", took, tt.min, tt.max)
			}
		})
	}
}
