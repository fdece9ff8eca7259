// Command operon-controlplane is a single binary holding a whole Kubernetes
// control plane for operon's tests and demo: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok (fake nodes), plus a small
// launcher (up/down/status/env) that wires them together on loopback, and
// the tools operon's tests use: crane, helm, oras, cosign, an OCI registry and
// toxiproxy.
//
// The component is chosen by argv[0] (symlink named like the component) or by
// the first argument: `operon-controlplane kube-apiserver --flags...`.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	_ "time/tzdata" // CronJob time zones

	"github.com/spf13/pflag"
	etcdmain "go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kwokconfig "sigs.k8s.io/kwok/pkg/config"
	kwokcmd "sigs.k8s.io/kwok/pkg/kwok/cmd"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
	kwoksignals "sigs.k8s.io/kwok/pkg/utils/signals"
)

const usage = `usage: operon-controlplane <command> [flags]

components (run in the foreground, flags are the upstream ones):
  etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kwok

tools:
  crane ...                    go-containerregistry's crane (images without a daemon)
  helm ...                     Helm 4
  oras ...                     the ORAS CLI (OCI artifacts)
  cosign ...                   Sigstore's cosign (signing OCI artifacts)
  toxiproxy -port P            Shopify's TCP fault proxy, driven over its HTTP API
  registry --addr A --root DIR [--htpasswd FILE]   an OCI registry (distribution)

launcher:
  up      --state-dir DIR [--nodes N] [--owner-pid PID] [--timeout 120s] [--apiserver-arg FLAG]...
  down    --state-dir DIR
  status  --state-dir DIR
  env     --state-dir DIR

faults (for operon's fault tests):
  restart --state-dir DIR --component NAME [--signal TERM|KILL] [--down-for 0s]
  compact --state-dir DIR [--every 200ms --for 20s]
  version
`

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if !isCommand(name) {
		if len(args) == 0 {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	os.Exit(dispatch(name, args))
}

func isCommand(name string) bool {
	switch name {
	case "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok":
		return true
	}
	return false
}

func dispatch(name string, args []string) int {
	switch name {
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
		return 0
	case "kube-apiserver":
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "kube-controller-manager":
		cmd := kcm.NewControllerManagerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "kube-scheduler":
		cmd := scheduler.NewSchedulerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "kwok":
		return runKwok(args)
	case "crane":
		return runCrane(args)
	case "helm":
		return runHelm(args)
	case "oras":
		return runOras(args)
	case "cosign":
		return runCosign(args)
	case "toxiproxy":
		return runToxiproxy(args)
	case "registry", "registry-auth":
		return runRegistry(args)
	case "up":
		return cmdUp(args)
	case "down":
		return cmdDown(args)
	case "status":
		return cmdStatus(args)
	case "env":
		return cmdEnv(args)
	case "restart":
		return cmdRestart(args)
	case "compact":
		return cmdCompact(args)
	case "watchdog":
		return cmdWatchdog(args)
	case "version":
		fmt.Println(versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", name, usage)
	return 2
}

// runKwok mirrors sigs.k8s.io/kwok/cmd/kwok/main.go.
func runKwok(args []string) int {
	os.Args = append([]string{"kwok"}, args...) // kwok's global flags parse os.Args
	// Kubernetes packages linked into this binary register flags (e.g. a
	// non-bool --version) on pflag's global set, which cobra merges into
	// every command; kwok must not see them.
	pflag.CommandLine = pflag.NewFlagSet("kwok", pflag.ExitOnError)
	flagset := pflag.NewFlagSet("global", pflag.ContinueOnError)
	flagset.ParseErrorsAllowlist.UnknownFlags = true
	flagset.Usage = func() {}
	ctx := kwoksignals.SetupSignalContext()
	ctx, logger := kwoklog.InitFlags(ctx, flagset)
	ctx, err := kwokconfig.InitFlags(ctx, flagset)
	if err != nil {
		logger.Error("Init config flags", "err", err)
		return 1
	}
	command := kwokcmd.NewCommand(ctx)
	command.PersistentFlags().AddFlagSet(flagset)
	command.SetArgs(args)
	if err := command.ExecuteContext(ctx); err != nil {
		logger.Error("Execute exit", "err", err)
		return 1
	}
	return 0
}
