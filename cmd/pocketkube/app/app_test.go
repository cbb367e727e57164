package app

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

func runCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	cmd := NewRootCommand(klogFlags)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr bool
	}{
		{"version", []string{"version"}, "pocketkube dev\nKubernetes v", false},
		{"kubeconfig", []string{"kubeconfig", "--data-dir", dir}, "kind: Config", false},
		{"kubeconfig missing", []string{"kubeconfig", "--data-dir", filepath.Join(dir, "none")}, "has `pocketkube up --data-dir", true},
		{"up bad advertise", []string{"up", "--data-dir", dir, "--advertise-address", "x"}, `--advertise-address "x" is not an IP address`, true},
		{"up etcd key without cert", []string{"up", "--data-dir", dir, "--etcd-servers", "http://e:2379", "--etcd-keyfile", "k"}, "go together", true},
		{"up relative cgroup root", []string{"up", "--data-dir", dir, "--cgroup-root", "pk"}, `--cgroup-root "pk" is not a clean absolute cgroup path`, true},
		{"up unclean cgroup root", []string{"up", "--data-dir", dir, "--cgroup-root", "/pk/"}, `--cgroup-root "/pk/" is not a clean absolute cgroup path`, true},
		{"up disable unknown part", []string{"up", "--data-dir", dir, "--disable", "servicelb,traefik"}, `--disable "traefik": not a part of pocketkube that can be disabled (servicelb, storage, networkpolicy, metrics)`, true},
		{"up zero pod pids", []string{"up", "--data-dir", dir, "--pod-max-pids", "0"}, "--pod-max-pids 0: want a positive number, or -1 for no limit", true},
		{"up unknown OCI runtime", []string{"up", "--data-dir", dir, "--oci-runtime", "kata"}, `--oci-runtime "kata": want runc or crun`, true},
		{"up controller-manager arg without a name", []string{"up", "--data-dir", dir, "--kube-controller-manager-arg", "=20s"}, `--kube-controller-manager-arg "=20s": want NAME=VALUE`, true},
		{"up eviction threshold without <", []string{"up", "--data-dir", dir, "--eviction-hard", "memory.available=100Mi"}, `--eviction-hard "memory.available=100Mi": malformed pair "memory.available=100Mi", expect 'key<value'`, true},
		{"up eviction unknown signal", []string{"up", "--data-dir", dir, "--eviction-hard", "cpu.available<1"}, `--eviction-hard "cpu.available<1": unsupported eviction signal cpu.available`, true},
		{"up soft eviction without grace period", []string{"up", "--data-dir", dir, "--eviction-soft", "memory.available<1Gi"}, `--eviction-soft "memory.available<1Gi", --eviction-soft-grace-period "": grace period must be specified for the soft eviction threshold memory.available`, true},
		{"up soft grace period not a pair", []string{"up", "--data-dir", dir, "--eviction-soft-grace-period", "memory.available<1m"}, `--eviction-soft-grace-period "memory.available<1m": malformed pair "memory.available<1m", expect 'key=value'`, true},
		{"up bad minimum reclaim", []string{"up", "--data-dir", dir, "--eviction-minimum-reclaim", "memory.available=-1Gi"}, `--eviction-minimum-reclaim "memory.available=-1Gi": negative eviction minimum reclaim specified for memory.available`, true},
		{"up unknown pull credentials policy", []string{"up", "--data-dir", dir, "--image-pull-credentials-verification-policy", "Bogus"}, `invalid configuration: option "Bogus" specified for imagePullCredentialsVerificationPolicy. Valid options are "NeverVerify", "NeverVerifyPreloadedImages", "NeverVerifyAllowlistedImages" or "AlwaysVerify"`, true},
		{"up allowlist without its policy", []string{"up", "--data-dir", dir, "--preloaded-images-verification-allowlist", "docker.io/library/busybox"}, "invalid configuration: can't set `preloadedImagesVerificationAllowlist` if `imagePullCredentialsVertificationPolicy` is not \"NeverVerifyAllowlistedImages\"", true},
		{"up allowlist with a tag", []string{"up", "--data-dir", dir, "--image-pull-credentials-verification-policy", "NeverVerifyAllowlistedImages", "--preloaded-images-verification-allowlist", "docker.io/library/busybox:1"}, "invalid configuration: invalid image pattern in `preloadedImagesVerificationAllowlist`: neither tag nor digest is accepted in an image reference: docker.io/library/busybox:1", true},
		{"up server and cluster-init", []string{"up", "--data-dir", dir, "--cluster-init", "--server", "https://192.0.2.1:6443"}, "give one of them", true},
		{"up server without key", []string{"up", "--data-dir", dir, "--server", "https://192.0.2.1:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", "sha256:00"}, "--server needs --token, --discovery-token-ca-cert-hash and --certificate-key", true},
		{"up server bad key", []string{"up", "--data-dir", dir, "--server", "https://192.0.2.1:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", "sha256:00", "--certificate-key", "xyz"}, "--certificate-key: want 64 hex digits", true},
		{"up certificate key without server", []string{"up", "--data-dir", dir, "--certificate-key", "00"}, "they need --server", true},
		{"up takes no arguments", []string{"up", "now"}, `unknown command "now"`, true},
		{"etcd member-list without an embedded etcd", []string{"etcd", "member-list", "--data-dir", dir}, "has no embedded etcd", true},
		{"etcd remove-member without a data dir", []string{"etcd", "remove-member", "s2", "--data-dir", filepath.Join(dir, "none")}, "no server data directory", true},
		{"agent without server", []string{"agent", "--data-dir", dir}, "--server is required", true},
		{"agent http server", []string{"agent", "--data-dir", dir, "--server", "http://192.0.2.1:6443"}, `--server "http://192.0.2.1:6443": want https://HOST:PORT`, true},
		{"agent bad node name", []string{"agent", "--data-dir", dir, "--server", "https://192.0.2.1:6443", "--node-name", "Not_A_Name"}, `--node-name "Not_A_Name"`, true},
		{"agent not a token", []string{"agent", "--data-dir", filepath.Join(dir, "agent-dir"), "--server", "https://192.0.2.1:6443", "--node-name", "n1", "--node-ip", "192.0.2.2", "--token", "x"}, "--token: not a bootstrap token", true},
		{"proxy has kubectl's flags", []string{"proxy", "--help"}, "--reject-paths", false},
		{"proxy has connection flags", []string{"proxy", "--help"}, "--kubeconfig", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCommand(t, tt.args...)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, wantErr %v\n%s", err, tt.wantErr, out)
			}
			if !strings.Contains(out, tt.want) && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("output %q and error %v lack %q", out, err, tt.want)
			}
		})
	}
}
