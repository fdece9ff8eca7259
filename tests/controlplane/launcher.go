package main

// The launcher: `up` generates PKI and kubeconfigs into a state directory,
// starts every component as a detached child process of this same binary on
// free loopback ports, waits until the cluster is usable and records what it
// started; `down` stops exactly those processes and removes the state.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

const stateFile = "state.json"

// component is one process started by `up`.
type component struct {
	Name      string `json:"name"`
	Pid       int    `json:"pid"`
	StartTime string `json:"startTime"` // /proc/<pid>/stat field 22, guards against pid reuse
	Log       string `json:"log"`
	Health    string `json:"health,omitempty"` // URL probed by `status`
	// Args are the component's flags, kept so that `restart` can start it
	// again exactly as `up` did.
	Args []string `json:"args,omitempty"`
}

type state struct {
	Kubeconfig string      `json:"kubeconfig"`
	Server     string      `json:"server"`
	Binary     string      `json:"binary"`
	Nodes      int         `json:"nodes"`
	Components []component `json:"components"`
	Watchdog   *component  `json:"watchdog,omitempty"`
	// The test registries (tool_registry.go): open, and with basic auth.
	Registry     *registryInfo `json:"registry,omitempty"`
	RegistryAuth *registryInfo `json:"registryAuth,omitempty"`
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[controlplane] "+format+"\n", a...)
}

func versionString() string {
	out := "operon-controlplane"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return out
	}
	out += " (" + bi.GoVersion + ")"
	for _, d := range bi.Deps {
		switch d.Path {
		case "k8s.io/kubernetes", "go.etcd.io/etcd/server/v3", "sigs.k8s.io/kwok":
			out += fmt.Sprintf("\n  %s %s", d.Path, d.Version)
		}
	}
	return out
}

func stateDirFlag(fs *flag.FlagSet) *string {
	return fs.String("state-dir", "", "directory holding certs, kubeconfigs, data, logs and pids (required)")
}

func parse(fs *flag.FlagSet, args []string, dir *string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if *dir == "" {
		return "", errors.New("--state-dir is required")
	}
	return filepath.Abs(*dir)
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", stateFile, err)
	}
	return &s, nil
}

func writeState(dir string, s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

// procStartTime returns field 22 of /proc/<pid>/stat (start time in ticks).
func procStartTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	// fields after ')' start at field 3 (state); start time is field 22.
	if len(f) < 20 {
		return ""
	}
	if f[0] == "Z" {
		return "" // zombie: exited
	}
	return f[19]
}

func (c *component) alive() bool {
	return c.Pid > 0 && procStartTime(c.Pid) == c.StartTime && c.StartTime != ""
}

// ---------------------------------------------------------------- up

func cmdUp(args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dirFlag := stateDirFlag(fs)
	nodes := fs.Int("nodes", 3, "number of kwok fake nodes")
	ownerPid := fs.Int("owner-pid", 0, "if set, a watchdog stops the cluster when this process exits")
	timeout := fs.Duration("timeout", 180*time.Second, "how long to wait for the cluster to become ready")
	var apiserverArgs repeated
	fs.Var(&apiserverArgs, "apiserver-arg", "an extra kube-apiserver flag, e.g. --apiserver-arg=--watch-cache=false (repeatable)")
	dir, err := parse(fs, args, dirFlag)
	if err != nil {
		logf("up: %v", err)
		return 2
	}
	if s, err := readState(dir); err == nil {
		if len(s.Components) > 0 && allAlive(s) {
			logf("already running (state %s)", dir)
			fmt.Println(s.Kubeconfig)
			return 0
		}
		logf("stale state in %s: cleaning up first", dir)
		stop(dir, s, false)
	}
	start := time.Now()
	kubeconfig, err := up(dir, *nodes, *ownerPid, *timeout, apiserverArgs)
	if err != nil {
		logf("up failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
		if s, rerr := readState(dir); rerr == nil {
			stop(dir, s, false)
		}
		return 1
	}
	logf("cluster ready in %s; KUBECONFIG=%s", time.Since(start).Round(time.Millisecond), kubeconfig)
	fmt.Println(kubeconfig)
	return 0
}

func allAlive(s *state) bool {
	for i := range s.Components {
		if !s.Components[i].alive() {
			return false
		}
	}
	return true
}

func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

type launcher struct {
	dir   string
	self  string
	st    *state
	exits chan string // names of components that exited while `up` runs
}

func (l *launcher) spawn(name string, health string, args ...string) error {
	c, err := l.start(name, health, os.O_TRUNC, args)
	if err != nil {
		return err
	}
	if name == "watchdog" {
		l.st.Watchdog = &c
	} else {
		l.st.Components = append(l.st.Components, c)
	}
	return writeState(l.dir, l.st)
}

// start runs one component detached from this process; `flags` chooses
// whether its log starts over (os.O_TRUNC) or goes on (os.O_APPEND).
func (l *launcher) start(name, health string, flags int, args []string) (component, error) {
	logPath := filepath.Join(l.dir, "logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|flags, 0o644)
	if err != nil {
		return component{}, err
	}
	defer f.Close()
	cmd := exec.Command(l.self, append([]string{name}, args...)...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Dir = l.dir
	// Own session and process group: survives `up` exiting, and `down` can
	// signal the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return component{}, fmt.Errorf("start %s: %w", name, err)
	}
	c := component{Name: name, Pid: cmd.Process.Pid, Log: logPath, Health: health, Args: args}
	for i := 0; i < 50 && c.StartTime == ""; i++ {
		c.StartTime = procStartTime(c.Pid)
		if c.StartTime == "" {
			time.Sleep(2 * time.Millisecond)
		}
	}
	go func() {
		_ = cmd.Wait()
		if l.exits != nil {
			l.exits <- name
		}
	}()
	logf("started %-24s pid %-7d log %s", name, c.Pid, logPath)
	return c, nil
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond until it returns true, a component exits, or the deadline passes.
func (l *launcher) waitFor(deadline time.Time, what string, cond func() bool) error {
	for {
		select {
		case name := <-l.exits:
			return fmt.Errorf("%s exited while waiting for %s; last log lines:\n%s", name, what,
				tailFile(filepath.Join(l.dir, "logs", name+".log"), 30))
		default:
		}
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var insecureHTTP = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // loopback health probes only
}

func httpOK(url string) bool {
	resp, err := insecureHTTP.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func up(dir string, nodes, ownerPid int, timeout time.Duration, apiserverArgs []string) (string, error) {
	deadline := time.Now().Add(timeout)
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	for _, sub := range []string{"pki", "logs", "etcd"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return "", err
		}
	}
	ports, err := freePorts(6)
	if err != nil {
		return "", err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	t0 := time.Now()
	p, err := generatePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	kubeconfigs := map[string]string{}
	for _, user := range []string{"admin", "controller-manager", "scheduler", "kwok"} {
		path := filepath.Join(dir, user+".kubeconfig")
		if err := writeKubeconfig(path, server, p, user); err != nil {
			return "", err
		}
		kubeconfigs[user] = path
	}
	kwokConfig := filepath.Join(dir, "kwok.yaml")
	stages := []string{nodefast.DefaultNodeInit, nodelease.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady, podfast.DefaultPodComplete, podfast.DefaultPodDelete}
	if err := os.WriteFile(kwokConfig, []byte(strings.Join(stages, "\n---\n")), 0o600); err != nil {
		return "", err
	}
	logf("generated PKI and kubeconfigs in %s", time.Since(t0).Round(time.Millisecond))

	l := &launcher{dir: dir, self: self, exits: make(chan string, 8),
		st: &state{Kubeconfig: kubeconfigs["admin"], Server: server, Binary: self, Nodes: nodes}}
	if err := writeState(dir, l.st); err != nil {
		return "", err
	}
	pki := func(n string) string { return filepath.Join(dir, "pki", n) }

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	if err := l.spawn("etcd", etcdURL+"/health",
		"--name=operon",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=operon="+peerURL,
		"--unsafe-no-fsync=true", // throwaway test data: no fsync keeps etcd fast on busy disks
		"--log-level=warn",
	); err != nil {
		return "", err
	}
	if err := l.waitFor(deadline, "etcd /health", func() bool { return httpOK(etcdURL + "/health") }); err != nil {
		return "", err
	}
	logf("etcd healthy after %s", time.Since(t0).Round(time.Millisecond))

	audit, err := auditFlags(dir)
	if err != nil {
		return "", err
	}
	if err := l.spawn("kube-apiserver", server+"/readyz", append([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file=" + pki("apiserver.crt"),
		"--tls-private-key-file=" + pki("apiserver.key"),
		"--client-ca-file=" + pki("ca.crt"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki("sa.pub"),
		"--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none", // 127.0.0.1 is not a valid Endpoints address
		"--allow-privileged=true",
		"--profiling=false",
		"--v=0",
	}, append(audit, apiserverArgs...)...)...); err != nil {
		return "", err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigs["admin"])
	if err != nil {
		return "", err
	}
	cfg.Timeout = 5 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	if err := l.waitFor(deadline, "kube-apiserver /readyz", func() bool {
		return apiserverHealth(kubeconfigs["admin"]) == "ok"
	}); err != nil {
		return "", err
	}
	logf("kube-apiserver ready after %s", time.Since(t0).Round(time.Millisecond))

	if err := l.spawn("kube-controller-manager", fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort),
		"--kubeconfig="+kubeconfigs["controller-manager"],
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", kcmPort),
		"--leader-elect=false",
		"--controllers=*", // all default controllers: gc, statefulset, deployment, replicaset, job, cronjob, namespace, serviceaccount(-token), nodelifecycle, ...
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+pki("sa.key"),
		"--root-ca-file="+pki("ca.crt"),
		"--cluster-signing-cert-file="+pki("ca.crt"),
		"--cluster-signing-key-file="+pki("ca.key"),
		"--concurrent-gc-syncs=5",
		"--v=0",
	); err != nil {
		return "", err
	}
	if err := l.spawn("kube-scheduler", fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort),
		"--kubeconfig="+kubeconfigs["scheduler"],
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", schedPort),
		"--leader-elect=false",
		"--v=0",
	); err != nil {
		return "", err
	}
	if err := l.spawn("kwok", fmt.Sprintf("http://127.0.0.1:%d/healthz", kwokPort),
		"--kubeconfig="+kubeconfigs["kwok"],
		"--config="+kwokConfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-ip=127.0.0.1",
		"--cidr=10.244.0.0/16",
		"--node-lease-duration-seconds=40",
		fmt.Sprintf("--server-address=127.0.0.1:%d", kwokPort),
	); err != nil {
		return "", err
	}
	if err := l.startRegistries(deadline); err != nil {
		return "", err
	}
	if ownerPid > 0 {
		if err := l.spawn("watchdog", "", "--state-dir="+dir, "--owner-pid="+strconv.Itoa(ownerPid)); err != nil {
			return "", err
		}
	}

	for i := 0; i < nodes; i++ {
		if err := createNode(ctx, cs, fmt.Sprintf("kwok-node-%d", i)); err != nil {
			return "", fmt.Errorf("create node: %w", err)
		}
	}
	if err := l.waitFor(deadline, fmt.Sprintf("%d kwok nodes Ready", nodes), func() bool {
		return readyNodes(ctx, cs) >= nodes
	}); err != nil {
		return "", err
	}
	logf("%d nodes Ready after %s", nodes, time.Since(t0).Round(time.Millisecond))
	if err := l.waitFor(deadline, "kube-controller-manager and kube-scheduler /healthz", func() bool {
		return httpOK(l.st.Components[2].Health) && httpOK(l.st.Components[3].Health)
	}); err != nil {
		return "", err
	}
	// The serviceaccount controller creating "default" proves the
	// controller-manager is acting on the API, and pods need that account.
	if err := l.waitFor(deadline, "ServiceAccount default/default (controller-manager working)", func() bool {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return "", err
	}
	l.exits = nil
	return kubeconfigs["admin"], nil
}

func createNode(ctx context.Context, cs kubernetes.Interface, name string) error {
	q := resource.MustParse
	res := corev1.ResourceList{"cpu": q("32"), "memory": q("256Gi"), "pods": q("110"), "ephemeral-storage": q("1Ti")}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
				"kubernetes.io/arch": "amd64", "kubernetes.io/role": "agent", "node-role.kubernetes.io/agent": "",
			},
		},
		Status: corev1.NodeStatus{Allocatable: res, Capacity: res},
	}
	_, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func readyNodes(ctx context.Context, cs kubernetes.Interface) int {
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0
	}
	n := 0
	for _, node := range list.Items {
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

// repeated is a flag given any number of times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// ---------------------------------------------------------------- down

func cmdDown(args []string) int {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	dirFlag := stateDirFlag(fs)
	keep := fs.Bool("keep-state", false, "stop processes but keep the state directory (logs)")
	dir, err := parse(fs, args, dirFlag)
	if err != nil {
		logf("down: %v", err)
		return 2
	}
	s, err := readState(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			logf("nothing to stop in %s", dir)
			if !*keep {
				_ = os.RemoveAll(dir)
			}
			return 0
		}
		logf("down: %v", err)
		return 1
	}
	if !stop(dir, s, !*keep) {
		return 1
	}
	return 0
}

// stop terminates the recorded processes (newest first), then optionally
// removes the state directory. Returns false if something survived.
func stop(dir string, s *state, remove bool) bool {
	ok := true
	all := append([]component{}, s.Components...)
	if s.Watchdog != nil && s.Watchdog.Pid != os.Getpid() {
		all = append(all, *s.Watchdog)
	}
	// Clients of etcd first (newest first), etcd last: an apiserver whose
	// etcd vanished shuts down slowly.
	var first, last []component
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Name == "etcd" {
			last = append(last, all[i])
		} else {
			first = append(first, all[i])
		}
	}
	for _, group := range [][]component{first, last} {
		for _, c := range group {
			if c.alive() {
				_ = syscall.Kill(-c.Pid, syscall.SIGTERM) // process group (Setsid)
				_ = syscall.Kill(c.Pid, syscall.SIGTERM)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, c := range group {
			for c.alive() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if c.alive() {
				logf("%s (pid %d) ignored SIGTERM for 10s: SIGKILL", c.Name, c.Pid)
				_ = syscall.Kill(-c.Pid, syscall.SIGKILL)
				_ = syscall.Kill(c.Pid, syscall.SIGKILL)
				time.Sleep(100 * time.Millisecond)
			}
			if c.alive() {
				logf("could not stop %s (pid %d)", c.Name, c.Pid)
				ok = false
			} else if c.Pid > 0 {
				logf("stopped %s (pid %d)", c.Name, c.Pid)
			}
		}
	}
	if remove && ok {
		if err := os.RemoveAll(dir); err != nil {
			logf("remove %s: %v", dir, err)
			return false
		}
		logf("removed %s", dir)
	} else {
		_ = os.Remove(filepath.Join(dir, stateFile))
	}
	return ok
}

// ---------------------------------------------------------------- status / env

func cmdStatus(args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	dirFlag := stateDirFlag(fs)
	dir, err := parse(fs, args, dirFlag)
	if err != nil {
		logf("status: %v", err)
		return 2
	}
	s, err := readState(dir)
	if err != nil {
		fmt.Printf("no cluster in %s (%v)\n", dir, err)
		return 3
	}
	fmt.Printf("state dir:  %s\nkubeconfig: %s\nserver:     %s\n\n", dir, s.Kubeconfig, s.Server)
	healthy := true
	fmt.Printf("%-24s %-8s %-8s %-8s %s\n", "COMPONENT", "PID", "PROCESS", "HEALTH", "LOG")
	all := append([]component{}, s.Components...)
	if s.Watchdog != nil {
		all = append(all, *s.Watchdog)
	}
	for _, c := range all {
		proc := "running"
		if !c.alive() {
			proc = "dead"
			healthy = false
		}
		health := "-"
		if c.Health != "" {
			health = "ok"
			if c.Name == "kube-apiserver" {
				health = apiserverHealth(s.Kubeconfig)
			} else if !httpOK(c.Health) {
				health = "failing"
			}
			if health != "ok" {
				healthy = false
			}
		}
		fmt.Printf("%-24s %-8d %-8s %-8s %s\n", c.Name, c.Pid, proc, health, c.Log)
	}
	if cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig); err == nil {
		cfg.Timeout = 3 * time.Second
		if cs, err := kubernetes.NewForConfig(cfg); err == nil {
			n := readyNodes(context.Background(), cs)
			fmt.Printf("\nnodes Ready: %d/%d\n", n, s.Nodes)
			if n < s.Nodes {
				healthy = false
			}
		}
	}
	if !healthy {
		return 1
	}
	return 0
}

func apiserverHealth(kubeconfig string) string {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return "failing"
	}
	cfg.Timeout = 3 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "failing"
	}
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background()); err != nil {
		return "failing"
	}
	return "ok"
}

func cmdEnv(args []string) int {
	fs := flag.NewFlagSet("env", flag.ContinueOnError)
	dirFlag := stateDirFlag(fs)
	dir, err := parse(fs, args, dirFlag)
	if err != nil {
		logf("env: %v", err)
		return 2
	}
	s, err := readState(dir)
	if err != nil {
		logf("no cluster in %s: %v", dir, err)
		return 1
	}
	fmt.Printf("export KUBECONFIG=%s\n", shellQuote(s.Kubeconfig))
	printRegistryEnv(s)
	return 0
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '+' || r == ':' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ---------------------------------------------------------------- watchdog

// cmdWatchdog stops the cluster when the owner process (a test binary or
// `cargo xtask test`) goes away without calling `down`, e.g. when killed.
func cmdWatchdog(args []string) int {
	fs := flag.NewFlagSet("watchdog", flag.ContinueOnError)
	dirFlag := stateDirFlag(fs)
	owner := fs.Int("owner-pid", 0, "pid to watch")
	dir, err := parse(fs, args, dirFlag)
	if err != nil || *owner <= 0 {
		logf("watchdog: bad arguments: %v", err)
		return 2
	}
	ownerStart := procStartTime(*owner)
	if ownerStart == "" {
		logf("watchdog: owner %d not running", *owner)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, stateFile)); err != nil {
			return 0 // stopped by `down`
		}
		if procStartTime(*owner) != ownerStart || ownerStart == "" {
			logf("watchdog: owner pid %d exited; stopping the cluster", *owner)
			if s, err := readState(dir); err == nil {
				stop(dir, s, true)
			}
			return 0
		}
		time.Sleep(500 * time.Millisecond)
	}
}
