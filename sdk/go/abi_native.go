//go:build !wasip1

package operon

// Outside a component (native `go test`) there is no host: reads fail and
// logs are dropped.

func clusterGet(apiVersion, kind, namespace, name string) (string, bool, error) {
	return "", false, &ClusterError{Kind: "unknown kind", Message: "no host outside a component"}
}

func clusterList(apiVersion, kind, namespace, selector string) ([]string, error) {
	return nil, &ClusterError{Kind: "unknown kind", Message: "no host outside a component"}
}

func hostLog(level LogLevel, message string) {}
