package operon

// Gvk is a Kubernetes group/version/kind; the core group is "".
type Gvk struct {
	Group, Version, Kind string
}

// NewGvk returns a Gvk.
func NewGvk(group, version, kind string) Gvk { return Gvk{group, version, kind} }

// APIVersion is `group/version`, or just `version` for the core group.
func (g Gvk) APIVersion() string {
	if g.Group == "" {
		return g.Version
	}
	return g.Group + "/" + g.Version
}

// Common kinds children are made of.
var (
	Deployment = Gvk{"apps", "v1", "Deployment"}
	Service    = Gvk{"", "v1", "Service"}
	ConfigMap  = Gvk{"", "v1", "ConfigMap"}
	Secret     = Gvk{"", "v1", "Secret"}
)

// ObjectRef names one object. Namespace is "" for cluster-scoped objects.
type ObjectRef struct {
	APIVersion, Kind, Namespace, Name string
}

// MappingKind says how a related object maps to parents.
type MappingKind uint8

const (
	// MapCustom calls the plugin's MapRelated.
	MapCustom MappingKind = iota
	// MapLabel: the related object's label (Key) names the parent.
	MapLabel
	// MapField: the related object's JSON field at dotted path Key names the parent.
	MapField
	// MapNamespace: every parent in the related object's namespace.
	MapNamespace
)

// RelatedMapping is the WIT variant related-mapping.
type RelatedMapping struct {
	Kind MappingKind
	Key  string // label key or field path for MapLabel / MapField
}

// RelatedKind is a kind the plugin reads and watches but does not own.
type RelatedKind struct {
	Kind    Gvk
	Mapping RelatedMapping
}

// Capabilities are the grants a plugin requests.
type Capabilities struct {
	Reads   []Gvk
	Patches []Gvk
	Secrets bool
}

// Registration is what `describe` answers.
type Registration struct {
	Name, Version string
	Parent        Gvk
	// Namespaced is true for namespaced parents (NewRegistration sets it).
	Namespaced   bool
	Owns         []Gvk
	Related      []RelatedKind
	Finalizer    bool
	CRDs         []string
	Capabilities Capabilities
}

// NewRegistration starts a registration for a namespaced parent kind.
func NewRegistration(name, version string, parent Gvk) *Registration {
	return &Registration{Name: name, Version: version, Parent: parent, Namespaced: true}
}

// Own adds owned kinds.
func (r *Registration) Own(kinds ...Gvk) *Registration { r.Owns = append(r.Owns, kinds...); return r }

// CRD adds a CustomResourceDefinition (JSON text) the host installs.
func (r *Registration) CRD(json string) *Registration { r.CRDs = append(r.CRDs, json); return r }

// Relate adds a related kind.
func (r *Registration) Relate(kind Gvk, mapping RelatedMapping) *Registration {
	r.Related = append(r.Related, RelatedKind{kind, mapping})
	return r
}

// WithFinalizer asks for the finalizer `operon.dev/<name>`.
func (r *Registration) WithFinalizer() *Registration { r.Finalizer = true; return r }

// ClusterScoped marks the parent kind cluster-scoped.
func (r *Registration) ClusterScoped() *Registration { r.Namespaced = false; return r }

// EventType is Normal or Warning.
type EventType uint8

const (
	Normal EventType = iota
	Warning
)

func (t EventType) String() string {
	if t == Warning {
		return "Warning"
	}
	return "Normal"
}

// Event is a Kubernetes event about the parent.
type Event struct {
	Type            EventType
	Reason, Message string
}

// PatchType says how a patch body is read.
type PatchType uint8

const (
	MergePatch PatchType = iota
	JSONPatch
	ApplyPatch
)

// Patch changes an object the plugin does not own (needs a `patches` grant).
type Patch struct {
	Target      ObjectRef
	Subresource string // "" for the object itself
	Type        PatchType
	Body        string // JSON text
}

// Response is the outcome of a successful reconcile.
type Response struct {
	// Children: every desired child; values are marshalled with encoding/json
	// (a string or json.RawMessage is taken as JSON text as it is).
	Children []any
	// Status: the parent's new status (marshalled), nil to leave it.
	Status         any
	Events         []Event
	RequeueAfterMs *uint64
	Finalized      bool
	Patches        []Patch
}

// NewResponse returns an empty response.
func NewResponse() *Response { return &Response{} }

// Child adds a desired child.
func (r *Response) Child(obj any) *Response { r.Children = append(r.Children, obj); return r }

// WithStatus sets the parent's status.
func (r *Response) WithStatus(status any) *Response { r.Status = status; return r }

// Event adds an event.
func (r *Response) Event(t EventType, reason, message string) *Response {
	r.Events = append(r.Events, Event{t, reason, message})
	return r
}

// RequeueAfter asks for another reconcile after ms milliseconds.
func (r *Response) RequeueAfter(ms uint64) *Response { r.RequeueAfterMs = &ms; return r }

// Reconciler is what a plugin implements.
type Reconciler interface {
	Describe() *Registration
	Reconcile(req *Request) (*Response, error)
}

// RelatedMapper is implemented by reconcilers with MapCustom related kinds.
type RelatedMapper interface {
	MapRelated(related map[string]any) []ObjectRef
}

var registered Reconciler

// Register sets the plugin's reconciler; call it from an init function.
func Register(r Reconciler) { registered = r }
