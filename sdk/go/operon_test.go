package operon

import (
	"encoding/json"
	"testing"
	"time"
)

func fixedNow(t *testing.T, at string) {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatal(err)
	}
	old := nowFunc
	nowFunc = func() time.Time { return tm }
	t.Cleanup(func() { nowFunc = old })
}

func TestFormatRFC3339(t *testing.T) {
	if got := FormatRFC3339(time.Unix(951_782_400, 0)); got != "2000-02-29T00:00:00Z" {
		t.Fatalf("got %s", got)
	}
}

func TestSetConditionKeepsTransitionTimeWhenStatusUnchanged(t *testing.T) {
	fixedNow(t, "2026-01-01T00:00:00Z")
	old := []Condition{{Type: "Ready", Status: "False", Reason: "A", LastTransitionTime: "2024-01-01T00:00:00Z"}}
	got := SetCondition(old, NewCondition("Ready", false, "B", "m").WithObservedGeneration(3, true))
	if got[0].LastTransitionTime != "2024-01-01T00:00:00Z" || got[0].Reason != "B" || *got[0].ObservedGeneration != 3 {
		t.Fatalf("got %+v", got[0])
	}
	got = SetCondition(got, NewCondition("Ready", true, "C", "m"))
	if got[0].LastTransitionTime != "2026-01-01T00:00:00Z" || got[0].ObservedGeneration != nil {
		t.Fatalf("got %+v", got[0])
	}
	got = SetCondition(got, NewCondition("Other", true, "D", ""))
	if len(got) != 2 || got[1].LastTransitionTime != "2026-01-01T00:00:00Z" {
		t.Fatalf("got %+v", got)
	}
}

func TestRequestConditionsDropSyncedAndMalformed(t *testing.T) {
	parent := `{"kind":"X","metadata":{"name":"a","namespace":"n","generation":7},"status":{"conditions":[
		{"type":"Ready","status":"True","reason":"R","message":"","lastTransitionTime":"2024-01-01T00:00:00Z","observedGeneration":6},
		{"type":"Synced","status":"True","reason":"S","message":"","lastTransitionTime":"2024-01-01T00:00:00Z"},
		{"type":"Bad","status":"Maybe"}, 5]}}`
	req, err := NewRequest(parent, nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	conds := req.Conditions()
	if len(conds) != 1 || conds[0].Type != "Ready" || *conds[0].ObservedGeneration != 6 {
		t.Fatalf("got %+v", conds)
	}
	if g, ok := req.Generation(); !ok || g != 7 || req.Name() != "a" || req.Namespace() != "n" {
		t.Fatal("metadata")
	}
}

func TestObservedNamedAndInt64(t *testing.T) {
	req, err := NewRequest(`{"metadata":{"name":"a"}}`, []string{
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"status":{"readyReplicas":2}}`,
	}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := req.ObservedNamed(Deployment, "a")
	if n, ok := Int64(d, "status", "readyReplicas"); !ok || n != 2 {
		t.Fatalf("got %v %v", n, ok)
	}
	if req.ObservedNamed(Deployment, "b") != nil {
		t.Fatal("found b")
	}
	if _, ok := Int64(nil, "status", "readyReplicas"); ok {
		t.Fatal("nil object")
	}
}

func TestDecodeParentErrorsArePermanent(t *testing.T) {
	req, _ := NewRequest(`{"kind":"Memcached","metadata":{"name":"a","namespace":"n"},"spec":{"size":"x"}}`, nil, false, nil)
	var p struct {
		Spec struct {
			Size int32 `json:"size"`
		} `json:"spec"`
	}
	err := AsError(req.DecodeParent(&p))
	if !err.Permanent || err.Message != "Memcached n/a: spec.size: expected int32, got string" {
		t.Fatalf("got %q", err.Message)
	}
	if _, err := NewRequest("[", nil, false, nil); err == nil || !AsError(err).Permanent {
		t.Fatal("bad json")
	}
}

func TestObjectAndConditionJSON(t *testing.T) {
	obj := Object(Service, Meta{Name: "a", Labels: map[string]string{"k": "v"}}, map[string]any{"spec": map[string]any{}})
	b, _ := json.Marshal(obj)
	if string(b) != `{"apiVersion":"v1","kind":"Service","metadata":{"labels":{"k":"v"},"name":"a"},"spec":{}}` {
		t.Fatalf("got %s", b)
	}
	b, _ = json.Marshal(NewCondition("Ready", true, "R", "m"))
	if string(b) != `{"type":"Ready","status":"True","reason":"R","message":"m","lastTransitionTime":""}` {
		t.Fatalf("got %s", b)
	}
}

func TestAsError(t *testing.T) {
	if e := AsError(Permanentf("x %d", 1)); !e.Permanent || e.Message != "x 1" {
		t.Fatal(e)
	}
	if e := AsError(json.Unmarshal([]byte("{"), &struct{}{})); e.Permanent {
		t.Fatal(e)
	}
}
