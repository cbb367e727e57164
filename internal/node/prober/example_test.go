package prober_test

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/pocketkube/pocketkube/internal/node/prober"
)

type runtimeExec struct{}

func (runtimeExec) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, int, error) {
	return nil, 0, nil // the agent passes the runtime's exec here
}

// The agent's wiring: one Manager, Update on every pod sync, the results
// read back when it computes container status and decides on restarts.
func Example() {
	m, err := prober.New(prober.Config{
		Exec:     runtimeExec{},
		OnChange: func(podUID string) { /* enqueue the pod for a sync */ },
	})
	if err != nil {
		panic(err)
	}
	defer m.Close()

	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}}}
	pod.UID = "uid-1"
	m.Update(context.Background(), pod, "10.88.0.5", map[string]prober.RunningContainer{
		"app": {ID: "c1", StartedAt: time.Now()},
	})
	failed, _ := m.Liveness("uid-1", "app")
	fmt.Println(m.Started("uid-1", "app"), m.Ready("uid-1", "app"), failed)
	// Output: true true false
}
