package volume

import "sync"

// ClaimVolume is a pod's persistentVolumeClaim or generic ephemeral volume
// as the Manager set it up, for the volume stats.
type ClaimVolume struct {
	// Claim is the PersistentVolumeClaim's name, in the pod's namespace.
	Claim string
	// Path is where the volume's files are on the host.
	Path string
	// Local is true for a local PV, whose stats kubelet takes from its
	// filesystem (MetricsStatFS); false for a hostPath PV.
	Local bool
}

// claimRecord remembers the claim volumes of the pods set up since the
// agent started (Setup runs again for every pod when it restarts); a pod's
// entries go with TeardownPod, so it holds at most the live pods' claims.
type claimRecord struct {
	mu   sync.Mutex
	pods map[string]map[string]ClaimVolume
}

func (r *claimRecord) set(podUID, volume string, cv ClaimVolume) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pods == nil {
		r.pods = map[string]map[string]ClaimVolume{}
	}
	if r.pods[podUID] == nil {
		r.pods[podUID] = map[string]ClaimVolume{}
	}
	r.pods[podUID][volume] = cv
}

func (r *claimRecord) forget(podUID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pods, podUID)
}

// Claim returns the claim volume of a pod as set up, false when the pod
// has no such volume set up.
func (m *Manager) Claim(podUID, volume string) (ClaimVolume, bool) {
	m.claims.mu.Lock()
	defer m.claims.mu.Unlock()
	cv, ok := m.claims.pods[podUID][volume]
	return cv, ok
}
