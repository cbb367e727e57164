package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	httpprobe "k8s.io/kubernetes/pkg/probe/http"
)

// maxRespBodyLength is how much of a hook's HTTP response kubelet reads
// before it closes the connection.
const maxRespBodyLength = 10 * 1 << 10

// RunHandler runs a postStart or preStop handler h of container c
// (containerID, in pod) as kubelet's lifecycle handler runner does: exec in
// the container, an HTTP GET to the handler's host or podIP, or a sleep that
// ctx ends early. TCPSocket handlers are deprecated and not run, as
// upstream. On failure it returns kubelet's message for the
// FailedPostStartHook / FailedPreStopHook event together with the error.
func RunHandler(ctx context.Context, exec Executor, pod *v1.Pod, c *v1.Container, podIP, containerID string, h *v1.LifecycleHandler) (message string, err error) {
	logger := klog.FromContext(ctx)
	switch {
	case h.Exec != nil:
		// kubelet gives hooks no timeout of their own: the grace period
		// (ctx) bounds them.
		output, err := (&execCmd{ctx: ctx, exec: exec, containerID: containerID, cmd: h.Exec.Command}).CombinedOutput()
		if err != nil {
			msg := fmt.Sprintf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %v, message: %q", h.Exec.Command, c.Name, podDesc(pod), err, string(output))
			logger.V(1).Info("Exec lifecycle hook for Container in Pod failed", "execCommand", h.Exec.Command, "containerName", c.Name, "pod", klog.KObj(pod), "message", string(output), "err", err)
			return msg, err
		}
		return "", nil
	case h.HTTPGet != nil:
		if err := runHTTPHandler(ctx, c, podIP, h.HTTPGet); err != nil {
			msg := fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v", h.HTTPGet.Path, c.Name, podDesc(pod), err)
			logger.V(1).Info("HTTP lifecycle hook for Container in Pod failed", "path", h.HTTPGet.Path, "containerName", c.Name, "pod", klog.KObj(pod), "err", err)
			return msg, err
		}
		return "", nil
	case h.Sleep != nil:
		if err := runSleepHandler(ctx, h.Sleep.Seconds); err != nil {
			msg := fmt.Sprintf("Sleep lifecycle hook (%d) for Container %q in Pod %q failed - error: %v", h.Sleep.Seconds, c.Name, podDesc(pod), err)
			logger.V(1).Info("Sleep lifecycle hook for Container in Pod failed", "sleepSeconds", h.Sleep.Seconds, "containerName", c.Name, "pod", klog.KObj(pod), "err", err)
			return msg, err
		}
		return "", nil
	default:
		err := fmt.Errorf("invalid handler: %v", h)
		logger.Error(err, "Cannot run handler")
		return fmt.Sprintf("Cannot run handler: %v", err), err
	}
}

func runSleepHandler(ctx context.Context, seconds int64) error {
	t := time.NewTimer(time.Duration(seconds) * time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return errors.New("container terminated before sleep hook finished")
	case <-t.C:
		return nil
	}
}

// lifecycleHTTPClient is kubelet's insecureContainerLifecycleHTTPClient:
// an https hook is not verified (kubelet has nothing to verify the pod's
// certificate with), redirects are followed only to the same host, no
// timeout but the hook's, and no credentials ever.
var lifecycleHTTPClient = &http.Client{
	Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	},
	CheckRedirect: httpprobe.RedirectChecker(false),
}

func runHTTPHandler(ctx context.Context, c *v1.Container, podIP string, get *v1.HTTPGetAction) error {
	host := get.Host
	if host == "" {
		if podIP == "" {
			return errors.New("failed to find networking container: no pod IP")
		}
		host = podIP
	}
	req, err := newHTTPRequest(get, c, host, "lifecycle")
	if err != nil {
		return err
	}
	req = req.WithContext(ctx)
	client := lifecycleHTTPClient
	resp, err := client.Do(req)
	discardBody(resp)
	if isHTTPResponseError(err) {
		// An https hook answered by a plain HTTP server: kubelet retries
		// over HTTP, without the Authorization header.
		klog.FromContext(ctx).V(1).Info("HTTPS request to lifecycle hook got HTTP response, retrying with HTTP.", "host", req.URL.Host, "err", err)
		req := req.Clone(ctx)
		req.URL.Scheme = "http"
		req.Header.Del("Authorization")
		resp, httpErr := client.Do(req)
		if httpErr == nil {
			err = nil
		}
		discardBody(resp)
	}
	return err
}

func discardBody(resp *http.Response) {
	if resp == nil {
		return
	}
	defer resp.Body.Close()
	if resp.ContentLength <= maxRespBodyLength {
		_, _ = io.Copy(io.Discard, &io.LimitedReader{R: resp.Body, N: maxRespBodyLength})
	}
}

func isHTTPResponseError(err error) bool {
	var urlErr *url.Error
	if !errors.As(err, &urlErr) {
		return false
	}
	return strings.Contains(urlErr.Err.Error(), "server gave HTTP response to HTTPS client")
}
