// Package machine owns the host's facts: its CPUs, memory, the storage of
// the node's data directory, huge page sizes, machine and boot IDs, kernel
// and OS, read as cadvisor gives them to kubelet. The node status reports
// them (capacity, allocatable, nodeInfo), and /stats/summary will need them
// too.
//
// It only reads: what the node makes of the facts (allocatable after
// eviction thresholds, conditions) is the agent's. Read is Linux-only.
package machine
