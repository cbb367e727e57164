package app

import (
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	nodeutil "k8s.io/component-helpers/node/util"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// validateNodeFlags checks the flags that `up` and `agent` share for the
// node they run.
func validateNodeFlags(kubeletPort int32, cgroupRoot string, podMaxPids int64, nodeName, ociRuntime string) error {
	if ociRuntime != runtime.Runc && ociRuntime != runtime.Crun {
		return fmt.Errorf("--oci-runtime %q: want %s or %s", ociRuntime, runtime.Runc, runtime.Crun)
	}
	if kubeletPort <= 0 || kubeletPort > 65535 {
		return fmt.Errorf("--kubelet-port %d is not a port", kubeletPort)
	}
	if !path.IsAbs(cgroupRoot) || path.Clean(cgroupRoot) != cgroupRoot {
		return fmt.Errorf("--cgroup-root %q is not a clean absolute cgroup path", cgroupRoot)
	}
	if podMaxPids == 0 || podMaxPids < -1 {
		return fmt.Errorf("--pod-max-pids %d: want a positive number, or -1 for no limit", podMaxPids)
	}
	if nodeName != "" {
		if errs := validation.IsDNS1123Subdomain(nodeName); len(errs) > 0 {
			return fmt.Errorf("--node-name %q: %s", nodeName, strings.Join(errs, "; "))
		}
	}
	return nil
}

// nodeName is --node-name, or else the machine's hostname as kubelet
// takes it (lowercased).
func nodeName(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	return nodeutil.GetHostname("")
}
