package main

// registry: an OCI distribution registry (github.com/distribution/distribution/v3,
// the reference implementation behind Docker Hub and most self-hosted
// registries), for operon's image and, with basic auth, for plugin
// artifacts behind pull secrets.
//
// Why distribution and not go-containerregistry's pkg/registry: the latter
// is a small in-memory registry without authentication, and pull secrets
// need a registry that answers 401 with a Basic challenge and checks the
// credentials; distribution does it with its htpasswd access controller.
//
// `up` starts two (startRegistries): an open one and one that requires the
// credentials it writes into the state directory, each on a free loopback
// port over plain HTTP, storing blobs under the state directory.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"golang.org/x/crypto/bcrypt"
)

// registryInfo is a registry started by `up`, as state.json and `env` tell it.
type registryInfo struct {
	// Addr is host:port, plain HTTP.
	Addr string `json:"addr"`
	// Username and Password are set when the registry requires basic auth.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

func runRegistry(args []string) int {
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	addr := fs.String("addr", "", "host:port to listen on, plain HTTP (required)")
	root := fs.String("root", "", "directory for the blobs and manifests (required)")
	htpasswd := fs.String("htpasswd", "", "bcrypt htpasswd file: require basic auth with its users")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || *root == "" {
		fmt.Fprintln(os.Stderr, "registry: --addr and --root are required")
		return 2
	}
	// distribution sets up OpenTelemetry from the environment; without a
	// collector the default OTLP exporter only logs connection errors.
	if os.Getenv("OTEL_TRACES_EXPORTER") == "" {
		_ = os.Setenv("OTEL_TRACES_EXPORTER", "none")
	}
	text := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
http:
  addr: %q
`, *root, *addr)
	if *htpasswd != "" {
		text += fmt.Sprintf("auth:\n  htpasswd:\n    realm: operon-test\n    path: %q\n", *htpasswd)
	}
	cfg, err := configuration.Parse(strings.NewReader(text))
	if err != nil {
		fmt.Fprintf(os.Stderr, "registry: configuration: %v\n", err)
		return 1
	}
	r, err := registry.NewRegistry(context.Background(), cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "registry: %v\n", err)
		return 1
	}
	if err := r.ListenAndServe(); err != nil {
		fmt.Fprintf(os.Stderr, "registry: %v\n", err)
		return 1
	}
	return 0
}

// startRegistries starts the open registry and the one with basic auth
// (user `operon`, a random password) and waits until both answer.
func (l *launcher) startRegistries(deadline time.Time) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	password := hex.EncodeToString(secret)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	htpasswd := filepath.Join(l.dir, "registry-auth.htpasswd")
	if err := os.WriteFile(htpasswd, []byte("operon:"+string(hash)+"\n"), 0o600); err != nil {
		return err
	}
	open := registryInfo{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	auth := registryInfo{Addr: fmt.Sprintf("127.0.0.1:%d", ports[1]), Username: "operon", Password: password}
	if err := l.spawn("registry", "http://"+open.Addr+"/",
		"--addr="+open.Addr, "--root="+filepath.Join(l.dir, "registry")); err != nil {
		return err
	}
	if err := l.spawn("registry-auth", "http://"+auth.Addr+"/",
		"--addr="+auth.Addr, "--root="+filepath.Join(l.dir, "registry-auth"), "--htpasswd="+htpasswd); err != nil {
		return err
	}
	l.st.Registry, l.st.RegistryAuth = &open, &auth
	if err := writeState(l.dir, l.st); err != nil {
		return err
	}
	for _, r := range []registryInfo{open, auth} {
		url := "http://" + r.Addr + "/"
		if err := l.waitFor(deadline, "registry "+r.Addr, func() bool { return httpOK(url) }); err != nil {
			return err
		}
	}
	return nil
}

// printRegistryEnv is `env`'s part about the registries.
func printRegistryEnv(s *state) {
	if s.Registry != nil {
		fmt.Printf("export OPERON_REGISTRY=%s\n", s.Registry.Addr)
	}
	if r := s.RegistryAuth; r != nil {
		fmt.Printf("export OPERON_REGISTRY_AUTH=%s\n", r.Addr)
		fmt.Printf("export OPERON_REGISTRY_USERNAME=%s\n", shellQuote(r.Username))
		fmt.Printf("export OPERON_REGISTRY_PASSWORD=%s\n", shellQuote(r.Password))
	}
}
