package main

// oras: the ORAS CLI (oras.land/oras), the common tool for pushing
// arbitrary OCI artifacts. The tests push a plugin with it (not with
// `operon push`) to show that any tool following the Wasm OCI artifact
// layout publishes plugins operon runs.

import (
	"context"
	"os"
	"os/signal"

	orasroot "oras.land/oras/cmd/oras/root"
)

// runOras mirrors oras.land/oras/cmd/oras/main.go.
func runOras(args []string) int {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	cmd := orasroot.New()
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		return 1
	}
	return 0
}
