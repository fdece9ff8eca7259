package main

import (
	"encoding/json"
	"testing"

	operon "github.com/operon/operon/sdk/go"
)

const parentJSON = `{"apiVersion":"cache.operon.dev/v1alpha1","kind":"Memcached",
 "metadata":{"name":"example","namespace":"demo","generation":3},
 "spec":{"size":5},
 "status":{"conditions":[
  {"type":"Ready","status":"False","reason":"Progressing","message":"2/3 replicas ready","lastTransitionTime":"2024-05-01T12:05:01Z","observedGeneration":2},
  {"type":"Synced","status":"True","reason":"ReconcileSucceeded","message":"","lastTransitionTime":"2024-05-01T12:00:01Z"}]}}`

const deploymentJSON = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"example","namespace":"demo"},
 "spec":{"replicas":3},"status":{"readyReplicas":3}}`

func TestScaledKeepsTransitionTimeAndRecordsEvent(t *testing.T) {
	req, err := operon.NewRequest(parentJSON, []string{deploymentJSON}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := memcached{}.Reconcile(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Children) != 2 || len(resp.Events) != 1 ||
		resp.Events[0].Message != "Scaling Deployment example from 3 to 5 replicas" {
		t.Fatalf("got %+v", resp)
	}
	b, _ := json.Marshal(resp.Status)
	want := `{"readyReplicas":3,"conditions":[{"type":"Ready","status":"False","reason":"Progressing","message":"3/5 replicas ready","lastTransitionTime":"2024-05-01T12:05:01Z","observedGeneration":3}]}`
	if string(b) != want {
		t.Fatalf("status %s", b)
	}
	d, _ := json.Marshal(resp.Children[0])
	var dep map[string]any
	_ = json.Unmarshal(d, &dep)
	if n, _ := operon.Int64(dep, "spec", "replicas"); n != 5 {
		t.Fatalf("deployment %s", d)
	}
}

func TestNegativeSizeIsPermanent(t *testing.T) {
	req, _ := operon.NewRequest(`{"kind":"Memcached","metadata":{"name":"b","namespace":"demo"},"spec":{"size":-1}}`, nil, false, nil)
	_, err := memcached{}.Reconcile(req)
	if e := operon.AsError(err); !e.Permanent || e.Message != "spec.size must be >= 0, got -1" {
		t.Fatalf("got %v", err)
	}
}

func TestPortArgAndMissingSize(t *testing.T) {
	req, _ := operon.NewRequest(`{"kind":"Memcached","metadata":{"name":"a"},"spec":{"size":1,"port":1234}}`, nil, false, nil)
	resp, err := memcached{}.Reconcile(req)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := json.Marshal(resp.Children[0])
	var dep map[string]any
	_ = json.Unmarshal(d, &dep)
	args := operon.Get(dep, "spec", "template", "spec").(map[string]any)["containers"].([]any)[0].(map[string]any)["args"].([]any)
	if len(args) != 5 || args[4] != "-p=1234" {
		t.Fatalf("args %v", args)
	}
	req, _ = operon.NewRequest(`{"kind":"Memcached","metadata":{"name":"a","namespace":"n"},"spec":{}}`, nil, false, nil)
	if _, err := (memcached{}).Reconcile(req); err == nil || !operon.AsError(err).Permanent {
		t.Fatalf("got %v", err)
	}
}
