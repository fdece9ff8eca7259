package main

// helm: the real Helm CLI (helm.sh/helm/v4), for the chart's tests
// (`helm lint`, `helm template`, `helm install` into the local control
// plane) and for rendering deploy/ from charts/operon.
//
// Why v4 and not v3: Helm 3 keeps its commands in package main
// (cmd/helm), which cannot be imported; Helm 4 exports them
// (helm.sh/helm/v4/pkg/cmd.NewRootCmd). Both ask for the v0.37 client
// libraries; the module's replace directives hold every k8s.io module at
// v0.36.3 and Helm 4.3.1 builds and runs against them.

import (
	"errors"
	"log/slog"
	"os"

	helmcmd "helm.sh/helm/v4/pkg/cmd"
	helmkube "helm.sh/helm/v4/pkg/kube"
)

// runHelm mirrors helm.sh/helm/v4/cmd/helm/helm.go.
func runHelm(args []string) int {
	// The field manager Helm writes with, as upstream sets it.
	helmkube.ManagedFieldsManager = "helm"
	cmd, err := helmcmd.NewRootCmd(os.Stdout, args, helmcmd.SetupLogging)
	if err != nil {
		slog.Warn("command failed", slog.Any("error", err))
		return 1
	}
	cmd.SetArgs(args) // cobra would otherwise read os.Args, which start with "helm"'s caller
	if err := cmd.Execute(); err != nil {
		if cerr, ok := errors.AsType[helmcmd.CommandError](err); ok {
			return cerr.ExitCode
		}
		return 1
	}
	return 0
}
