package main

// crane: go-containerregistry's CLI, to build operon's image without a
// container engine (`cargo xtask image`: append a layer to an empty base,
// set entrypoint and user, pull it as an OCI layout) and to push it.

import (
	"context"
	"os"
	"os/signal"

	cranecmd "github.com/google/go-containerregistry/cmd/crane/cmd"
	"github.com/google/go-containerregistry/pkg/logs"
)

// runCrane mirrors github.com/google/go-containerregistry/cmd/crane/main.go.
func runCrane(args []string) int {
	logs.Warn.SetOutput(os.Stderr)
	logs.Progress.SetOutput(os.Stderr)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	cranecmd.Root.SetArgs(args)
	if err := cranecmd.Root.ExecuteContext(ctx); err != nil {
		return 1
	}
	return 0
}
