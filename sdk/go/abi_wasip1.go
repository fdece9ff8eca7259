//go:build wasip1

package operon

// The glue of world operon:reconciler/reconciler@0.1.0: its exports as
// //go:wasmexport functions, its imports as //go:wasmimport ones, reading and
// writing linear memory through the types of abi_layout.go (whose layout the
// tests hold to the WIT).
//
// Everything the host writes into guest memory goes through cabi_realloc;
// everything the guest hands out stays pinned (referenced from `pins`, so
// Go's non-moving GC keeps it) until the host calls the export's post-return
// function.

import (
	"encoding/json"
	"unsafe"
)

// The functions below have the core signatures the test checks.
func _() {
	var (
		_ describeFunc       = exportDescribe
		_ postDescribeFunc   = postDescribe
		_ reconcileFunc      = exportReconcile
		_ postReconcileFunc  = postReconcile
		_ mapRelatedFunc     = exportMapRelated
		_ postMapRelatedFunc = postMapRelated
		_ clusterGetFunc     = importGet
		_ clusterListFunc    = importList
		_ logFunc            = importLog
	)
}

var pins []unsafe.Pointer

func alloc(size, align uintptr) unsafe.Pointer {
	if size == 0 {
		size = 1
	}
	var p unsafe.Pointer
	if align > 4 {
		buf := make([]uint64, (size+7)/8)
		p = unsafe.Pointer(&buf[0])
	} else {
		buf := make([]uint32, (size+3)/4)
		p = unsafe.Pointer(&buf[0])
	}
	pins = append(pins, p)
	return p
}

// allocT allocates a pinned, zeroed T.
func allocT[T any]() *T {
	var zero T
	return (*T)(alloc(unsafe.Sizeof(zero), unsafe.Alignof(zero)))
}

func release() { pins = nil }

//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uint32) unsafe.Pointer {
	p := alloc(uintptr(newSize), uintptr(align))
	if old != nil && oldSize > 0 {
		n := min(oldSize, newSize)
		copy(unsafe.Slice((*byte)(p), n), unsafe.Slice((*byte)(old), n))
	}
	return p
}

func addr(p unsafe.Pointer) uint32 { return uint32(uintptr(p)) }

// at turns a linear-memory address the host wrote into a pointer (wasm
// memory is flat and Go's GC does not move objects).
func at(addr uint32) unsafe.Pointer { return unsafe.Add(unsafe.Pointer(nil), addr) }

// lift copies the string out of linear memory.
func (s abiString) lift() string {
	if s.Len == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(at(s.Ptr)), s.Len))
}

// lowerString copies s into pinned memory.
func lowerString(s string) abiString {
	if len(s) == 0 {
		return abiString{Ptr: 1} // any aligned pointer: nothing is read
	}
	buf := alloc(uintptr(len(s)), 1)
	copy(unsafe.Slice((*byte)(buf), len(s)), s)
	return abiString{Ptr: addr(buf), Len: uint32(len(s))}
}

func lowerOptString(s string, some bool) abiOption[abiString] {
	if !some {
		return abiOption[abiString]{}
	}
	return abiOption[abiString]{Some: true, Val: lowerString(s)}
}

// elems is the list's elements, in linear memory.
func (l abiList[T]) elems() []T {
	if l.Len == 0 {
		return nil
	}
	return unsafe.Slice((*T)(at(l.Ptr)), l.Len)
}

// lowerList copies items, each lowered by lower, into a pinned array.
func lowerList[T, E any](items []E, lower func(E) T) abiList[T] {
	var zero T
	if len(items) == 0 {
		return abiList[T]{Ptr: uint32(unsafe.Alignof(zero))} // aligned, never read
	}
	base := alloc(uintptr(len(items))*unsafe.Sizeof(zero), unsafe.Alignof(zero))
	elems := unsafe.Slice((*T)(base), len(items))
	for i, item := range items {
		elems[i] = lower(item)
	}
	return abiList[T]{Ptr: addr(base), Len: uint32(len(items))}
}

func lowerGvk(g Gvk) abiGvk {
	return abiGvk{Group: lowerString(g.Group), Version: lowerString(g.Version), Kind: lowerString(g.Kind)}
}

func lowerObjectRef(r ObjectRef) abiObjectRef {
	return abiObjectRef{
		APIVersion: lowerString(r.APIVersion),
		Kind:       lowerString(r.Kind),
		Namespace:  lowerOptString(r.Namespace, r.Namespace != ""),
		Name:       lowerString(r.Name),
	}
}

func lowerRelatedKind(rk RelatedKind) abiRelatedKind {
	mapping := abiRelatedMapping{Tag: rk.Mapping.Kind}
	if rk.Mapping.Kind == MapLabel || rk.Mapping.Kind == MapField {
		mapping.Val = lowerString(rk.Mapping.Key)
	}
	return abiRelatedKind{Kind: lowerGvk(rk.Kind), Mapping: mapping}
}

//go:wasmexport describe
func exportDescribe() *abiRegistration {
	reg := registered.Describe()
	out := allocT[abiRegistration]()
	*out = abiRegistration{
		Name:      lowerString(reg.Name),
		Version:   lowerString(reg.Version),
		Parent:    abiParentKind{Kind: lowerGvk(reg.Parent), Namespaced: reg.Namespaced},
		Owns:      lowerList(reg.Owns, lowerGvk),
		Related:   lowerList(reg.Related, lowerRelatedKind),
		Finalizer: reg.Finalizer,
		CRDs:      lowerList(reg.CRDs, lowerString),
		Capabilities: abiCapabilities{
			Reads:   lowerList(reg.Capabilities.Reads, lowerGvk),
			Patches: lowerList(reg.Capabilities.Patches, lowerGvk),
			Secrets: reg.Capabilities.Secrets,
		},
	}
	return out
}

//go:wasmexport cabi_post_describe
func postDescribe(*abiRegistration) { release() }

// lift copies the request's texts and configuration out of linear memory.
func (r abiRequest) lift() (parent string, observed []string, config map[string]string) {
	parent = r.Parent.lift()
	observed = make([]string, r.Observed.Len)
	for i, s := range r.Observed.elems() {
		observed[i] = s.lift()
	}
	config = make(map[string]string, r.Config.Len)
	for _, e := range r.Config.elems() {
		config[e.Key.lift()] = e.Value.lift()
	}
	return parent, observed, config
}

// reconcile: the request record arrives flattened; the result<response,
// error> goes into a return area.
//
//go:wasmexport reconcile
func exportReconcile(parentPtr, parentLen, observedPtr, observedLen uint32, finalizing bool, configPtr, configLen uint32) *abiReconcileResult {
	parent, observed, config := abiRequest{
		Parent:     abiString{Ptr: parentPtr, Len: parentLen},
		Observed:   abiList[abiString]{Ptr: observedPtr, Len: observedLen},
		Finalizing: finalizing,
		Config:     abiList[abiConfigEntry]{Ptr: configPtr, Len: configLen},
	}.lift()
	// The arguments are copied: their buffers need not stay pinned.
	release()

	resp, err := run(parent, observed, finalizing, config)
	var children []string
	var status string
	if err == nil {
		children, status, err = encodeResponse(resp)
	}
	out := allocT[abiReconcileResult]()
	if err != nil {
		e := AsError(err)
		tag := errorRetryable
		if e.Permanent {
			tag = errorPermanent
		}
		out.IsErr = true
		*out.err() = abiError{Tag: tag, Val: lowerString(e.Message)}
		return out
	}
	requeue := abiOption[uint64]{}
	if resp.RequeueAfterMs != nil {
		requeue = abiOption[uint64]{Some: true, Val: *resp.RequeueAfterMs}
	}
	*out.ok() = abiResponse{
		Children: lowerList(children, lowerString),
		Status:   lowerOptString(status, resp.Status != nil),
		Events: lowerList(resp.Events, func(ev Event) abiEvent {
			return abiEvent{Type: ev.Type, Reason: lowerString(ev.Reason), Message: lowerString(ev.Message)}
		}),
		RequeueAfterMs: requeue,
		Finalized:      resp.Finalized,
		Patches: lowerList(resp.Patches, func(pt Patch) abiPatch {
			return abiPatch{
				Target:      lowerObjectRef(pt.Target),
				Subresource: lowerOptString(pt.Subresource, pt.Subresource != ""),
				PatchType:   pt.Type,
				Body:        lowerString(pt.Body),
			}
		}),
	}
	return out
}

//go:wasmexport cabi_post_reconcile
func postReconcile(*abiReconcileResult) { release() }

// map-related: list<object-ref> in a return area.
//
//go:wasmexport map-related
func exportMapRelated(relatedPtr, relatedLen uint32) *abiList[abiObjectRef] {
	text := abiString{Ptr: relatedPtr, Len: relatedLen}.lift()
	release()
	out := allocT[abiList[abiObjectRef]]()
	*out = lowerList(mapRelated(text), lowerObjectRef)
	return out
}

//go:wasmexport cabi_post_map-related
func postMapRelated(*abiList[abiObjectRef]) { release() }

func run(parent string, observed []string, finalizing bool, config map[string]string) (resp *Response, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, Retryablef("reconciler panicked: %v", r)
		}
	}()
	req, err := NewRequest(parent, observed, finalizing, config)
	if err != nil {
		return nil, err
	}
	resp, err = registered.Reconcile(req)
	if err == nil && resp == nil {
		resp = NewResponse()
	}
	return resp, err
}

// encodeResponse marshals children and status to JSON text.
func encodeResponse(resp *Response) ([]string, string, error) {
	children := make([]string, len(resp.Children))
	for i, c := range resp.Children {
		text, err := toJSON(c)
		if err != nil {
			return nil, "", Retryablef("child %d: %v", i, err)
		}
		children[i] = text
	}
	var status string
	if resp.Status != nil {
		text, err := toJSON(resp.Status)
		if err != nil {
			return nil, "", Retryablef("status: %v", err)
		}
		status = text
	}
	return children, status, nil
}

func toJSON(v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case json.RawMessage:
		return string(t), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func mapRelated(text string) []ObjectRef {
	m, ok := registered.(RelatedMapper)
	if !ok {
		return nil
	}
	v, err := decodeJSON(text)
	obj, isObj := v.(map[string]any)
	if err != nil || !isObj {
		return nil
	}
	return m.MapRelated(obj)
}

// Imports.

//go:wasmimport operon:reconciler/cluster@0.1.0 get
//go:noescape
func importGet(apiVersionPtr, apiVersionLen, kindPtr, kindLen uint32, hasNamespace bool, namespacePtr, namespaceLen, namePtr, nameLen uint32, ret *abiGetResult)

//go:wasmimport operon:reconciler/cluster@0.1.0 list
//go:noescape
func importList(apiVersionPtr, apiVersionLen, kindPtr, kindLen uint32, hasNamespace bool, namespacePtr, namespaceLen uint32, hasSelector bool, selectorPtr, selectorLen uint32, ret *abiListResult)

//go:wasmimport operon:reconciler/log@0.1.0 log
//go:noescape
func importLog(level, messagePtr, messageLen uint32)

// clusterErrorKinds are the SDK's ClusterError kinds of the WIT cases.
var clusterErrorKinds = [...]string{
	clusterForbidden:   "forbidden",
	clusterUnknownKind: "unknown kind",
	clusterInvalid:     "invalid",
}

func liftClusterError(e *abiClusterError) error {
	kind := "cluster error"
	if int(e.Tag) < len(clusterErrorKinds) {
		kind = clusterErrorKinds[e.Tag]
	}
	return &ClusterError{Kind: kind, Message: e.Val.lift()}
}

func clusterGet(apiVersion, kind, namespace, name string) (string, bool, error) {
	av, k, n := lowerString(apiVersion), lowerString(kind), lowerString(name)
	ns := lowerOptString(namespace, namespace != "")
	ret := allocT[abiGetResult]()
	importGet(av.Ptr, av.Len, k.Ptr, k.Len, ns.Some, ns.Val.Ptr, ns.Val.Len, n.Ptr, n.Len, ret)
	if ret.IsErr {
		return "", false, liftClusterError(ret.err())
	}
	if found := ret.ok(); found.Some {
		return found.Val.lift(), true, nil
	}
	return "", false, nil
}

func clusterList(apiVersion, kind, namespace, selector string) ([]string, error) {
	av, k := lowerString(apiVersion), lowerString(kind)
	ns := lowerOptString(namespace, namespace != "")
	sel := lowerOptString(selector, selector != "")
	ret := allocT[abiListResult]()
	importList(av.Ptr, av.Len, k.Ptr, k.Len, ns.Some, ns.Val.Ptr, ns.Val.Len, sel.Some, sel.Val.Ptr, sel.Val.Len, ret)
	if ret.IsErr {
		return nil, liftClusterError(ret.err())
	}
	texts := ret.ok().elems()
	out := make([]string, len(texts))
	for i, s := range texts {
		out[i] = s.lift()
	}
	return out, nil
}

func hostLog(level LogLevel, message string) {
	m := lowerString(message)
	importLog(uint32(level), m.Ptr, m.Len)
}
