package kubeletapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/util/flushwriter"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/logs"
	"k8s.io/kubernetes/pkg/apis/core/v1/validation"
)

// getContainerLogs is upstream's getContainerLogs with
// PodLogsQuerySplitStreams off: the same query parameters, status codes and
// error texts.
func (s *Server) getContainerLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	namespace, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")

	query := r.URL.Query()
	// backwards compatibility for the "tail" query parameter
	if tail := query.Get("tail"); len(tail) > 0 {
		query["tailLines"] = []string{tail}
		// "all" is the same as omitting tail
		if tail == "all" {
			delete(query, "tailLines")
		}
	}
	// container logs on the kubelet are locked to the v1 API version of PodLogOptions
	opts := &v1.PodLogOptions{}
	if err := s.params.DecodeParameters(query, v1.SchemeGroupVersion, opts); err != nil {
		writeError(w, http.StatusBadRequest, `{"message": "Unable to decode query."}`)
		return
	}
	opts.TypeMeta.Reset()
	if errs := validation.ValidatePodLogOptions(opts); len(errs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, `{"message": "Invalid request."}`)
		return
	}

	pod, err := s.findPod(ctx, namespace, podName)
	if err != nil {
		writeError(w, statusFor(err), err.Error())
		return
	}
	if !hasContainer(pod, container) {
		writeError(w, http.StatusNotFound, (&NotFoundError{Namespace: namespace, Pod: podName, Container: container}).Error())
		return
	}
	if _, ok := w.(http.Flusher); !ok {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("unable to convert %T into http.Flusher, cannot show logs", w))
		return
	}
	if opts.Stream != nil && *opts.Stream != v1.LogStreamAll {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unable to return the given log stream: %q. Please enable PodLogsQuerySplitStreams feature gate in kubelet", *opts.Stream))
		return
	}

	path, running, err := s.cfg.Provider.ContainerLogPath(ctx, namespace, podName, container, opts.Previous)
	if err != nil {
		var nf *NotFoundError
		if errors.As(err, &nf) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Transfer-Encoding", "chunked")
	fw := flushwriter.Wrap(w)
	// As kubelet: a zero-byte write sends the headers before a follow blocks.
	if _, err := fw.Write([]byte{}); err != nil {
		return
	}
	if err := ReadLogs(ctx, path, opts, running, time.Now(), fw, fw); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
	}
}

// ReadLogs writes the CRI-format log file at path to stdout and stderr as
// kubelet does for opts (kuberuntime ReadLogs: tailLines, limitBytes,
// sinceSeconds counted back from now, sinceTime, timestamps, follow). A
// follow ends when running reports false (a nil running means "not
// running") and the file has been read to its end, or when ctx is done; it
// reopens the file when it is rotated.
func ReadLogs(ctx context.Context, path string, opts *v1.PodLogOptions, running func() bool, now time.Time, stdout, stderr io.Writer) error {
	o := &logs.LogOptions{
		TailLines:  opts.TailLines,
		LimitBytes: opts.LimitBytes,
		Follow:     opts.Follow,
		Timestamp:  opts.Timestamps,
	}
	if opts.SinceSeconds != nil {
		o.Since = now.Add(-time.Duration(*opts.SinceSeconds) * time.Second)
	}
	if opts.SinceTime != nil && opts.SinceTime.After(o.Since) {
		o.Since = opts.SinceTime.Time
	}
	if err := logs.ReadLogs(ctx, path, path, o, containerState{running: running}, stdout, stderr); err != nil {
		return fmt.Errorf("read logs %s: %w", path, err)
	}
	return nil
}

// containerState answers ReadLogs' only runtime question, ContainerStatus
// during a follow, from the provider's running func. The embedded nil
// interface panics on any other method, which ReadLogs does not call.
type containerState struct {
	internalapi.RuntimeService
	running func() bool
}

func (c containerState) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	state := runtimeapi.ContainerState_CONTAINER_EXITED
	if c.running != nil && c.running() {
		state = runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: id, State: state}}, nil
}

// statusFor maps a pod lookup error to its HTTP status.
func statusFor(err error) int {
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}
