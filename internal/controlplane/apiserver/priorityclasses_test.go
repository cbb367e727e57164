package apiserver

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	schedulingapiv1 "k8s.io/kubernetes/pkg/apis/scheduling/v1"
)

// The hook's one try creates upstream's system priority classes, is done
// when they exist, retries while the API server answers 503 (as upstream's
// does while storage versions are updated: a fault a running API server
// does not give on demand, hence the fake) and stops on other errors.
func TestEnsurePriorityClasses(t *testing.T) {
	ctx := t.Context()
	client := fake.NewClientset()
	done, err := ensurePriorityClasses(ctx, client.SchedulingV1())
	if !done || err != nil {
		t.Fatalf("first try: done %v, %v", done, err)
	}
	for _, want := range schedulingapiv1.SystemPriorityClasses() {
		got, err := client.SchedulingV1().PriorityClasses().Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Value != want.Value || got.Description != want.Description || got.GlobalDefault != want.GlobalDefault {
			t.Errorf("%s: %+v, want %+v", want.Name, got, want)
		}
	}
	creates := 0
	client.PrependReactor("create", "priorityclasses", func(clienttesting.Action) (bool, runtime.Object, error) {
		creates++
		return false, nil, nil
	})
	if done, err := ensurePriorityClasses(ctx, client.SchedulingV1()); !done || err != nil || creates != 0 {
		t.Errorf("second try: done %v, %v, %d creates; want done, no creates", done, err, creates)
	}

	unavailable := fake.NewClientset()
	unavailable.PrependReactor("create", "priorityclasses", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("storage versions are being updated")
	})
	if done, err := ensurePriorityClasses(ctx, unavailable.SchedulingV1()); done || err != nil {
		t.Errorf("503: done %v, %v; want a retry", done, err)
	}

	forbidden := fake.NewClientset()
	forbidden.PrependReactor("create", "priorityclasses", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "scheduling.k8s.io", Resource: "priorityclasses"}, "system-node-critical", errors.New("no"))
	})
	if done, err := ensurePriorityClasses(ctx, forbidden.SchedulingV1()); done || !apierrors.IsForbidden(err) {
		t.Errorf("403: done %v, %v; want the error", done, err)
	}
}
