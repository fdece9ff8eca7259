package main

// Faults of the control plane itself, for operon's fault tests: `restart`
// stops one component (SIGTERM or SIGKILL) and starts it again exactly as
// `up` did; `compact` compacts etcd's history, so that a watch resuming
// from an older revision is answered 410 Gone.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func cmdRestart(args []string) int {
	fs := flag.NewFlagSet("restart", flag.ContinueOnError)
	dirFlag := stateDirFlag(fs)
	name := fs.String("component", "", "etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kwok")
	signal := fs.String("signal", "TERM", "TERM (graceful shutdown) or KILL")
	downFor := fs.Duration("down-for", 0, "how long the component stays stopped")
	timeout := fs.Duration("timeout", 120*time.Second, "how long to wait for it to be healthy again")
	dir, err := parse(fs, args, dirFlag)
	if err != nil {
		logf("restart: %v", err)
		return 2
	}
	sig, ok := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL}[*signal]
	if !ok {
		logf("restart: --signal must be TERM or KILL, not %q", *signal)
		return 2
	}
	if err := restart(dir, *name, sig, *downFor, *timeout); err != nil {
		logf("restart %s: %v", *name, err)
		return 1
	}
	return 0
}

func restart(dir, name string, sig syscall.Signal, downFor, timeout time.Duration) error {
	s, err := readState(dir)
	if err != nil {
		return err
	}
	i := -1
	for j := range s.Components {
		if s.Components[j].Name == name {
			i = j
		}
	}
	if i < 0 {
		return fmt.Errorf("no component %q in %s", name, dir)
	}
	old := s.Components[i]
	if old.Args == nil {
		return fmt.Errorf("%s was started by a launcher that did not record its flags: run down and up again", name)
	}
	began := time.Now()
	if err := kill(old, sig); err != nil {
		return err
	}
	logf("%s (pid %d) stopped by SIG%s after %s", name, old.Pid, sigName(sig), time.Since(began).Round(time.Millisecond))
	time.Sleep(downFor)
	l := &launcher{dir: dir, self: s.Binary, st: s, exits: make(chan string, 1)}
	c, err := l.start(name, old.Health, os.O_APPEND, old.Args)
	if err != nil {
		return err
	}
	s.Components[i] = c
	if err := writeState(dir, s); err != nil {
		return err
	}
	healthy := func() bool { return httpOK(c.Health) }
	if name == "kube-apiserver" {
		healthy = func() bool { return apiserverHealth(s.Kubeconfig) == "ok" }
	}
	if err := l.waitFor(time.Now().Add(timeout), name+" healthy again", healthy); err != nil {
		return err
	}
	logf("%s healthy again %s after the signal", name, time.Since(began).Round(time.Millisecond))
	return nil
}

// kill signals the component's process group and waits until it is gone;
// one that ignores SIGTERM for 30 s gets SIGKILL.
func kill(c component, sig syscall.Signal) error {
	deadline := time.Now().Add(30 * time.Second)
	for c.alive() {
		_ = syscall.Kill(-c.Pid, sig)
		_ = syscall.Kill(c.Pid, sig)
		if time.Now().After(deadline) {
			if sig == syscall.SIGKILL {
				return fmt.Errorf("%s (pid %d) survived SIGKILL", c.Name, c.Pid)
			}
			logf("%s (pid %d) ignored SIGTERM for 30s: SIGKILL", c.Name, c.Pid)
			sig, deadline = syscall.SIGKILL, time.Now().Add(5*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGKILL {
		return "KILL"
	}
	return "TERM"
}

func cmdCompact(args []string) int {
	fs := flag.NewFlagSet("compact", flag.ContinueOnError)
	dirFlag := stateDirFlag(fs)
	every := fs.Duration("every", 0, "compact again at this interval, until --for has passed (0: once)")
	lasting := fs.Duration("for", 0, "how long to keep compacting with --every")
	dir, err := parse(fs, args, dirFlag)
	if err != nil {
		logf("compact: %v", err)
		return 2
	}
	if err := compact(dir, *every, *lasting); err != nil {
		logf("compact: %v", err)
		return 1
	}
	return 0
}

// compact compacts etcd up to its current revision, once or every
// `every` for `lasting`, and prints each revision it compacted to.
func compact(dir string, every, lasting time.Duration) error {
	s, err := readState(dir)
	if err != nil {
		return err
	}
	endpoint := ""
	for _, c := range s.Components {
		if c.Name == "etcd" {
			endpoint = strings.TrimSuffix(c.Health, "/health")
		}
	}
	if endpoint == "" {
		return fmt.Errorf("no etcd in %s", dir)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	end := time.Now().Add(lasting)
	var last int64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Get(ctx, "/operon-compact-probe")
		if err == nil && resp.Header.Revision > last {
			last = resp.Header.Revision
			_, err = cli.Compact(ctx, last)
			if err == nil {
				fmt.Println(last)
			}
		}
		cancel()
		if err != nil {
			return err
		}
		if every == 0 || time.Now().After(end) {
			return nil
		}
		time.Sleep(every)
	}
}
