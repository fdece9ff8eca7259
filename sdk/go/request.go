package operon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// SyncedCondition is the host-owned condition type.
const SyncedCondition = "Synced"

// Request is the input of one reconcile.
type Request struct {
	// ParentJSON and ObservedJSON are the texts the host sent.
	ParentJSON   string
	ObservedJSON []string
	Finalizing   bool
	Config       map[string]string

	// Parent and Observed are the same, decoded (numbers as json.Number).
	Parent   map[string]any
	Observed []map[string]any
}

// decodeJSON decodes into a generic value keeping numbers exact.
func decodeJSON(text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// NewRequest decodes a request; malformed JSON is a permanent error.
func NewRequest(parent string, observed []string, finalizing bool, config map[string]string) (*Request, error) {
	p, err := decodeJSON(parent)
	pm, ok := p.(map[string]any)
	if err != nil || !ok {
		return nil, Permanentf("parent is not a JSON object: %v", err)
	}
	req := &Request{ParentJSON: parent, ObservedJSON: observed, Finalizing: finalizing, Config: config, Parent: pm}
	for i, o := range observed {
		v, err := decodeJSON(o)
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			return nil, Permanentf("observed child %d is not a JSON object: %v", i, err)
		}
		req.Observed = append(req.Observed, m)
	}
	if req.Config == nil {
		req.Config = map[string]string{}
	}
	return req, nil
}

// Name is the parent's metadata.name.
func (r *Request) Name() string { s, _ := String(r.Parent, "metadata", "name"); return s }

// Namespace is the parent's metadata.namespace ("" for cluster-scoped).
func (r *Request) Namespace() string { s, _ := String(r.Parent, "metadata", "namespace"); return s }

// Generation is the parent's metadata.generation.
func (r *Request) Generation() (int64, bool) { return Int64(r.Parent, "metadata", "generation") }

// Status is the parent's current status (nil if none).
func (r *Request) Status() map[string]any { m, _ := Get(r.Parent, "status").(map[string]any); return m }

// Conditions are the parent's conditions without the host-owned Synced one:
// the starting point for SetCondition.
func (r *Request) Conditions() []Condition {
	return RemoveCondition(ConditionsFromStatus(r.Status()), SyncedCondition)
}

// describe names the parent in error messages, e.g. `Memcached demo/example`.
func (r *Request) describe() string {
	kind, _ := String(r.Parent, "kind")
	if ns := r.Namespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", kind, ns, r.Name())
	}
	return fmt.Sprintf("%s %s", kind, r.Name())
}

// DecodeParent decodes the parent into v (a struct with json tags); a
// mismatch is a permanent error naming the parent.
func (r *Request) DecodeParent(v any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(r.ParentJSON)))
	if err := dec.Decode(v); err != nil {
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			return Permanentf("%s: %s: expected %s, got %s", r.describe(), te.Field, te.Type, te.Value)
		}
		return Permanentf("%s: %v", r.describe(), err)
	}
	return nil
}

// Missing is the permanent error for a required field that is absent.
func (r *Request) Missing(path string) error {
	return Permanentf("%s: missing field %s", r.describe(), path)
}

// FindObserved is the observed child with this apiVersion, kind and name.
func (r *Request) FindObserved(apiVersion, kind, name string) map[string]any {
	for _, o := range r.Observed {
		av, _ := String(o, "apiVersion")
		k, _ := String(o, "kind")
		n, _ := String(o, "metadata", "name")
		if av == apiVersion && k == kind && n == name {
			return o
		}
	}
	return nil
}

// ObservedNamed is FindObserved for a Gvk.
func (r *Request) ObservedNamed(kind Gvk, name string) map[string]any {
	return r.FindObserved(kind.APIVersion(), kind.Kind, name)
}

// Get walks maps by keys; nil if any step is missing.
func Get(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, key := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[key]
	}
	return cur
}

// String is the string at path.
func String(obj map[string]any, path ...string) (string, bool) {
	s, ok := Get(obj, path...).(string)
	return s, ok
}

// Int64 is the integer at path.
func Int64(obj map[string]any, path ...string) (int64, bool) {
	return toInt64(Get(obj, path...))
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	case int:
		return int64(n), true
	case int64:
		return n, true
	case int32:
		return int64(n), true
	}
	return 0, false
}
