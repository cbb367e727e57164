//go:build bench

package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// churnGap is the pause between two Service changes in
// BenchmarkServiceChurn: shorter than kube-proxy's default minSyncPeriod
// (1 s), so that a longer period folds changes into fewer syncs, as it
// would under churn.
const churnGap = 250 * time.Millisecond

// BenchmarkServiceChurn measures the CPU a Service change costs the
// pocketkube process (API server, controllers, the Service proxy's
// nftables syncs and the `nft` runs it waits for): a busybox httpd pod,
// then per iteration a ClusterIP Service selecting it is created and,
// churnGap later, deleted, churnGap before the next iteration. The
// process's CPU time (utime+stime and its waited-for children's, from
// /proc/PID/stat) over the iterations, less its idle rate over 10 s
// before them times their wall time, divided by the changes (two per
// iteration) is cpu-per-change-ms; idle-cpu-ms-per-s is that idle rate.
// Comparing two binaries shows what a shorter minSyncPeriod costs.
func BenchmarkServiceChurn(b *testing.B) {
	c := startCluster(b)
	c.ImportBusybox(b, "busybox")
	client := highQPSClient(b, c)
	ctx := b.Context()
	const backend = "bench-churn-0"
	runBackend(b, client, backend, "churn")
	pid := c.Pid()
	idleStart, idleCPU := time.Now(), cpuTime(b, pid)
	time.Sleep(10 * time.Second)
	idleWall, idle := time.Since(idleStart), cpuTime(b, pid)-idleCPU
	idleRate := float64(idle) / float64(idleWall) // CPU seconds per second

	services := client.CoreV1().Services("default")
	changes := 0
	start, startCPU := time.Now(), cpuTime(b, pid)
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("bench-churn-%d", i)
		_, err := services.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{svcLabelKey: "churn"},
				Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			b.Fatalf("create service %s: %v", name, err)
		}
		time.Sleep(churnGap)
		if err := services.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			b.Fatalf("delete service %s: %v", name, err)
		}
		time.Sleep(churnGap)
		changes += 2
	}
	// The syncs the last changes asked for, at most one default
	// minSyncPeriod later.
	time.Sleep(time.Second)
	wall, used := time.Since(start), cpuTime(b, pid)-startCPU
	extra := float64(used) - idleRate*float64(wall)
	noNsPerOp(b)
	b.ReportMetric(ms(time.Duration(idleRate*float64(time.Second))), "idle-cpu-ms-per-s")
	b.ReportMetric(extra/float64(changes)/float64(time.Millisecond), "cpu-per-change-ms")
}

// cpuTime is the CPU time of process pid and of the children it waited
// for (utime, stime, cutime, cstime of /proc/PID/stat).
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is the
	// first, utime the 12th.
	i := bytes.LastIndexByte(raw, ')')
	fields := strings.Fields(string(raw[i+1:]))
	if i < 0 || len(fields) < 15 {
		b.Fatalf("parse /proc/%d/stat", pid)
	}
	var ticks int64
	for _, f := range fields[11:15] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("parse /proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond
}
