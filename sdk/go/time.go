package operon

import "time"

// RFC3339 is the layout of metav1.Time: UTC at second precision.
const RFC3339 = "2006-01-02T15:04:05Z"

// FormatRFC3339 formats t in UTC at second precision.
func FormatRFC3339(t time.Time) string { return t.UTC().Format(RFC3339) }

// nowFunc is the clock; under wasip1 time.Now reads the WASI wall clock the
// host provides (fixed by `operon reconcile --now`).
var nowFunc = time.Now

// NowRFC3339 is the current time as RFC 3339 UTC at second precision.
func NowRFC3339() string { return FormatRFC3339(nowFunc()) }
