// Command pocketkube is a single-binary Kubernetes node. See README.md.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/cmd/pocketkube/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A second Ctrl-C kills at once, as users expect of a stuck stop.
	go func() { <-ctx.Done(); stop() }()
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	err := app.NewRootCommand(klogFlags).ExecuteContext(ctx)
	klog.Flush()
	if err != nil {
		os.Exit(1)
	}
}
