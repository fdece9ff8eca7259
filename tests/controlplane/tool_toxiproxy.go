package main

// toxiproxy: Shopify's TCP fault proxy (github.com/Shopify/toxiproxy/v2),
// put between operon and the API server by the fault tests, which drive
// it over its HTTP API (latency, bandwidth, reset_peer, timeout,
// slow_close toxics).

import (
	"flag"
	"os"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// runToxiproxy mirrors toxiproxy's cmd/server: `toxiproxy -host H -port P`
// serves the API until killed. Logs go to stderr at warn level unless
// LOG_LEVEL says otherwise.
func runToxiproxy(args []string) int {
	fs := flag.NewFlagSet("toxiproxy", flag.ContinueOnError)
	host := fs.String("host", "127.0.0.1", "address of toxiproxy's API")
	port := fs.String("port", "8474", "port of toxiproxy's API")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := zerolog.WarnLevel
	if l, err := zerolog.ParseLevel(os.Getenv("LOG_LEVEL")); err == nil && l != zerolog.NoLevel {
		level = l
	}
	logger := zerolog.New(os.Stderr).With().Timestamp().Logger().Level(level)
	metrics := toxiproxy.NewMetricsContainer(prometheus.NewRegistry())
	server := toxiproxy.NewServer(metrics, logger)
	server.Listen(*host, *port)
	return 0
}
