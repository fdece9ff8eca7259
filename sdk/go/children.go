package operon

// Meta is the metadata of a child; empty fields are left out.
type Meta struct {
	Name, Namespace string
	Labels          map[string]string
	Annotations     map[string]string
}

func (m Meta) toMap() map[string]any {
	out := map[string]any{"name": m.Name}
	if m.Namespace != "" {
		out["namespace"] = m.Namespace
	}
	if len(m.Labels) > 0 {
		out["labels"] = copyStrings(m.Labels)
	}
	if len(m.Annotations) > 0 {
		out["annotations"] = copyStrings(m.Annotations)
	}
	return out
}

func copyStrings(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Object is a child object: apiVersion, kind, metadata, plus the fields
// given (e.g. "spec"). The host adds the ownerReference and its labels.
func Object(kind Gvk, meta Meta, fields map[string]any) map[string]any {
	obj := map[string]any{"apiVersion": kind.APIVersion(), "kind": kind.Kind, "metadata": meta.toMap()}
	for k, v := range fields {
		obj[k] = v
	}
	return obj
}
