package operon

// ClusterError is why a cluster read failed: Kind is "forbidden",
// "unknown kind" or "invalid".
type ClusterError struct {
	Kind, Message string
}

func (e *ClusterError) Error() string { return e.Kind + ": " + e.Message }

// ClusterGet reads one object (JSON text) from the host's watch cache; ok is false
// if it does not exist. namespace "" for cluster-scoped kinds.
func ClusterGet(apiVersion, kind, namespace, name string) (text string, ok bool, err error) {
	return clusterGet(apiVersion, kind, namespace, name)
}

// ClusterList reads objects of a kind (JSON texts), optionally in one namespace
// ("" for all) and filtered by a label selector ("" for none).
func ClusterList(apiVersion, kind, namespace, selector string) ([]string, error) {
	return clusterList(apiVersion, kind, namespace, selector)
}

// LogLevel is a log severity.
type LogLevel uint8

const (
	Trace LogLevel = iota
	Debug
	Info
	Warn
	ErrorLevel
)

// Log sends a message to the host's log, tagged with the plugin and parent.
func Log(level LogLevel, message string) { hostLog(level, message) }
