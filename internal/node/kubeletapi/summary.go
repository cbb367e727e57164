package kubeletapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// SummaryProvider builds kubelet's stats summary (the node agent's
// eviction.Summary, which the eviction manager reads too).
type SummaryProvider interface {
	// Get returns the node's and its pods' stats.
	Get(ctx context.Context, updateStats bool) (*statsapi.Summary, error)
	// GetCPUAndMemoryStats returns at least their CPU and memory.
	GetCPUAndMemoryStats(ctx context.Context) (*statsapi.Summary, error)
}

// getSummary serves /stats/summary as kubelet's handleSummary: the whole
// summary, or with only_cpu_and_memory=true the CPU and memory part, as
// indented JSON (go-restful's WriteAsJson); a failure is 500
// "Internal Error: ...".
func (s *Server) getSummary(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	logger := klog.FromContext(ctx)
	if err := r.ParseForm(); err != nil {
		s.summaryError(w, logger, fmt.Errorf("parse form failed: %w", err))
		return
	}
	var summary *statsapi.Summary
	var err error
	if v, ok := r.Form["only_cpu_and_memory"]; ok && len(v) == 1 && v[0] == "true" {
		summary, err = s.cfg.Summary.GetCPUAndMemoryStats(ctx)
	} else {
		// External calls to the summary API use cached stats, as kubelet's.
		summary, err = s.cfg.Summary.Get(ctx, false)
	}
	if err != nil {
		s.summaryError(w, logger, err)
		return
	}
	data, err := json.MarshalIndent(summary, "", " ")
	if err != nil {
		s.summaryError(w, logger, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(data); err != nil {
		logger.Error(err, "Error writing response")
	}
}

func (s *Server) summaryError(w http.ResponseWriter, logger klog.Logger, err error) {
	logger.Error(err, "HTTP InternalServerError serving", "request", "/stats/summary")
	writeError(w, http.StatusInternalServerError, fmt.Sprintf("Internal Error: %v", err))
}
