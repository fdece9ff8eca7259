// Command go-memcached is the classic operator tutorial as an operon
// reconciler, in Go: the same behaviour as examples/rust-memcached, checked
// by the same conformance cases (tests/conformance/memcached).
//
// A Memcached (cache.operon.dev/v1alpha1) becomes a Deployment of spec.size
// memcached pods and a ClusterIP Service, both named after the parent; the
// status reports the ready pods and a Ready condition.
//
// Build (cargo xtask build does this): GOOS=wasip1 GOARCH=wasm go build
// -buildmode=c-shared, then wasm-tools component embed + component new.
package main

import (
	_ "embed"
	"fmt"

	operon "github.com/operon/operon/sdk/go"
)

//go:embed crd.json
var crd string

const (
	group          = "cache.operon.dev"
	version        = "v1alpha1"
	kind           = "Memcached"
	pluginVersion  = "0.1.0"
	servicePort    = 11211
	defaultImage   = "memcached:1.6-alpine"
	containerName  = "memcached"
	readyCondition = "Ready"
)

func init() { operon.Register(memcached{}) }

// main is not called: the module is a reactor (-buildmode=c-shared).
func main() {}

type memcached struct{}

// spec of a Memcached; image and port default as in the CRD.
type spec struct {
	Size  *int32  `json:"size"`
	Image *string `json:"image"`
	Port  *int32  `json:"port"`
}

type parent struct {
	Spec *spec `json:"spec"`
}

type status struct {
	ReadyReplicas int64              `json:"readyReplicas"`
	Conditions    []operon.Condition `json:"conditions"`
}

func (memcached) Describe() *operon.Registration {
	return operon.NewRegistration("memcached", pluginVersion, operon.NewGvk(group, version, kind)).
		Own(operon.Deployment, operon.Service).
		CRD(crd)
}

func (memcached) Reconcile(req *operon.Request) (*operon.Response, error) {
	var p parent
	if err := req.DecodeParent(&p); err != nil {
		return nil, err
	}
	if p.Spec == nil {
		return nil, req.Missing("spec")
	}
	if p.Spec.Size == nil {
		return nil, req.Missing("spec.size")
	}
	size := int64(*p.Spec.Size)
	image, port := defaultImage, int64(servicePort)
	if p.Spec.Image != nil {
		image = *p.Spec.Image
	}
	if p.Spec.Port != nil {
		port = int64(*p.Spec.Port)
	}
	if size < 0 {
		// The CRD's `minimum: 0` normally stops this at admission; a parent
		// stored before the CRD was installed can still carry it.
		return nil, operon.Permanentf("spec.size must be >= 0, got %d", size)
	}
	name, namespace := req.Name(), req.Namespace()

	observed := req.ObservedNamed(operon.Deployment, name)
	ready, _ := operon.Int64(observed, "status", "readyReplicas")

	message := fmt.Sprintf("%d/%d replicas ready", ready, size)
	cond := operon.NewCondition(readyCondition, false, "Progressing", message)
	if ready == size {
		cond = operon.NewCondition(readyCondition, true, "AllReplicasReady", message)
	}
	conditions := operon.SetCondition(req.Conditions(), cond.WithObservedGeneration(req.Generation()))

	resp := operon.NewResponse().
		Child(deployment(name, namespace, size, image, port)).
		Child(service(name, namespace)).
		WithStatus(status{ReadyReplicas: ready, Conditions: conditions})

	if current, ok := operon.Int64(observed, "spec", "replicas"); ok && current != size {
		resp.Event(operon.Normal, "Scaled",
			fmt.Sprintf("Scaling Deployment %s from %d to %d replicas", name, current, size))
	}
	return resp, nil
}

// labels of every child, and the pod selector.
func labels(name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "memcached",
		"app.kubernetes.io/instance": name,
	}
}

func deployment(name, namespace string, size int64, image string, port int64) map[string]any {
	args := []string{"-m=64", "-o", "modern", "-v"}
	if port != servicePort {
		args = append(args, fmt.Sprintf("-p=%d", port))
	}
	return operon.Object(operon.Deployment, operon.Meta{Name: name, Namespace: namespace, Labels: labels(name)},
		map[string]any{"spec": map[string]any{
			"replicas": size,
			"selector": map[string]any{"matchLabels": labels(name)},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels(name)},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name":  containerName,
					"image": image,
					"args":  args,
					"ports": []any{map[string]any{
						"name":          containerName,
						"containerPort": port,
						"protocol":      "TCP",
					}},
				}}},
			},
		}})
}

// service: port 11211, forwarded to the pods' named port.
func service(name, namespace string) map[string]any {
	return operon.Object(operon.Service, operon.Meta{Name: name, Namespace: namespace, Labels: labels(name)},
		map[string]any{"spec": map[string]any{
			"type":     "ClusterIP",
			"selector": labels(name),
			"ports": []any{map[string]any{
				"name":       containerName,
				"port":       servicePort,
				"targetPort": containerName,
				"protocol":   "TCP",
			}},
		}})
}
