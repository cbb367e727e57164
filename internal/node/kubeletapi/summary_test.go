package kubeletapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// fakeSummary returns a summary naming which method built it.
type fakeSummary struct{ err error }

func (f fakeSummary) Get(context.Context, bool) (*statsapi.Summary, error) {
	return &statsapi.Summary{Node: statsapi.NodeStats{NodeName: "full"}}, f.err
}

func (f fakeSummary) GetCPUAndMemoryStats(context.Context) (*statsapi.Summary, error) {
	return &statsapi.Summary{Node: statsapi.NodeStats{NodeName: "cpu-and-memory"}}, f.err
}

func TestSummaryHandler(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		path     string
		err      error
		wantCode int
		wantNode string
		wantBody string
	}{
		{name: "whole summary", method: "GET", path: "/stats/summary", wantCode: http.StatusOK, wantNode: "full"},
		{name: "only cpu and memory", method: "GET", path: "/stats/summary?only_cpu_and_memory=true", wantCode: http.StatusOK, wantNode: "cpu-and-memory"},
		{name: "only_cpu_and_memory other than true", method: "GET", path: "/stats/summary?only_cpu_and_memory=1", wantCode: http.StatusOK, wantNode: "full"},
		{name: "error", method: "GET", path: "/stats/summary", err: errors.New("failed to get root cgroup stats"), wantCode: http.StatusInternalServerError, wantBody: "Internal Error: failed to get root cgroup stats"},
		{name: "POST", method: "POST", path: "/stats/summary", wantCode: http.StatusMethodNotAllowed, wantBody: "Method Not Allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: Config{Provider: &fakeProvider{}, Summary: fakeSummary{err: tt.err}}}
			rec := httptest.NewRecorder()
			s.routes().ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d (body %q)", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", rec.Body, tt.wantBody)
			}
			if tt.wantNode == "" {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var got statsapi.Summary
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("decode %q: %v", rec.Body, err)
			}
			if got.Node.NodeName != tt.wantNode {
				t.Errorf("node = %q, want the %q summary", got.Node.NodeName, tt.wantNode)
			}
		})
	}
}
