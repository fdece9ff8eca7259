//go:build wasip1

package operon

// The canonical ABI of world operon:reconciler/reconciler@0.1.0, by hand.
//
// Memory layouts (wasm32, offsets in bytes) follow the component model's
// canonical ABI for the WIT records in wit/reconciler.wit; each export that
// returns more than one flat value returns a pointer to a "return area" the
// guest allocates. Everything the host writes into guest memory goes through
// cabi_realloc; everything the guest hands out stays pinned (referenced from
// `pins`, so Go's non-moving GC keeps it) until the host calls the export's
// post-return function.

import (
	"encoding/json"
	"unsafe"
)

var pins []unsafe.Pointer

func alloc(size, align uint32) unsafe.Pointer {
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

func release() { pins = nil }

//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uint32) unsafe.Pointer {
	p := alloc(newSize, align)
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

func u8(p unsafe.Pointer, off uintptr) uint8 { return *(*uint8)(unsafe.Add(p, off)) }
func u32(p unsafe.Pointer, off uintptr) uint32 {
	return *(*uint32)(unsafe.Add(p, off))
}
func put8(p unsafe.Pointer, off uintptr, v uint8)   { *(*uint8)(unsafe.Add(p, off)) = v }
func put32(p unsafe.Pointer, off uintptr, v uint32) { *(*uint32)(unsafe.Add(p, off)) = v }
func put64(p unsafe.Pointer, off uintptr, v uint64) { *(*uint64)(unsafe.Add(p, off)) = v }

func putBool(p unsafe.Pointer, off uintptr, b bool) {
	if b {
		put8(p, off, 1)
	} else {
		put8(p, off, 0)
	}
}

// readString copies a (ptr, len) string out of linear memory.
func readString(ptr, n uint32) string {
	if n == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(at(ptr)), n))
}

// putString copies s into a pinned buffer and writes (ptr, len) at p+off.
func putString(p unsafe.Pointer, off uintptr, s string) {
	var ptr uint32
	if len(s) > 0 {
		buf := alloc(uint32(len(s)), 1)
		copy(unsafe.Slice((*byte)(buf), len(s)), s)
		ptr = addr(buf)
	} else {
		ptr = 1 // any aligned pointer: nothing is read
	}
	put32(p, off, ptr)
	put32(p, off+4, uint32(len(s)))
}

// putOptString writes option<string> (12 bytes: tag, ptr, len).
func putOptString(p unsafe.Pointer, off uintptr, s string, some bool) {
	if !some {
		put8(p, off, 0)
		return
	}
	put8(p, off, 1)
	putString(p, off+4, s)
}

// putList allocates n elements of size bytes and writes (ptr, len) at p+off;
// each element is filled by fill.
func putList(p unsafe.Pointer, off uintptr, n int, size, align uint32, fill func(elem unsafe.Pointer, i int)) {
	if n == 0 {
		put32(p, off, align)
		put32(p, off+4, 0)
		return
	}
	base := alloc(uint32(n)*size, align)
	for i := 0; i < n; i++ {
		fill(unsafe.Add(base, uintptr(i)*uintptr(size)), i)
	}
	put32(p, off, addr(base))
	put32(p, off+4, uint32(n))
}

// gvk: group @0, version @8, kind @16 (24 bytes).
func putGvk(p unsafe.Pointer, g Gvk) {
	putString(p, 0, g.Group)
	putString(p, 8, g.Version)
	putString(p, 16, g.Kind)
}

func putGvks(p unsafe.Pointer, off uintptr, gs []Gvk) {
	putList(p, off, len(gs), 24, 4, func(e unsafe.Pointer, i int) { putGvk(e, gs[i]) })
}

// object-ref: api-version @0, kind @8, namespace option<string> @16, name @28 (36 bytes).
func putObjectRef(p unsafe.Pointer, r ObjectRef) {
	putString(p, 0, r.APIVersion)
	putString(p, 8, r.Kind)
	putOptString(p, 16, r.Namespace, r.Namespace != "")
	putString(p, 28, r.Name)
}

// registration (92 bytes): name @0, version @8, parent @16 (gvk @16,
// namespaced @40), owns @44, related @52 (36-byte elements: gvk @0, mapping
// tag @24, string @28), finalizer @60, crds @64, capabilities @72 (reads
// @72, patches @80, secrets @88).
//
//go:wasmexport describe
func exportDescribe() unsafe.Pointer {
	reg := registered.Describe()
	p := alloc(92, 4)
	putString(p, 0, reg.Name)
	putString(p, 8, reg.Version)
	putGvk(unsafe.Add(p, 16), reg.Parent)
	putBool(p, 40, reg.Namespaced)
	putGvks(p, 44, reg.Owns)
	putList(p, 52, len(reg.Related), 36, 4, func(e unsafe.Pointer, i int) {
		rk := reg.Related[i]
		putGvk(e, rk.Kind)
		put8(e, 24, uint8(rk.Mapping.Kind))
		if rk.Mapping.Kind == MapLabel || rk.Mapping.Kind == MapField {
			putString(e, 28, rk.Mapping.Key)
		}
	})
	putBool(p, 60, reg.Finalizer)
	putList(p, 64, len(reg.CRDs), 8, 4, func(e unsafe.Pointer, i int) { putString(e, 0, reg.CRDs[i]) })
	putGvks(p, 72, reg.Capabilities.Reads)
	putGvks(p, 80, reg.Capabilities.Patches)
	putBool(p, 88, reg.Capabilities.Secrets)
	return p
}

//go:wasmexport cabi_post_describe
func postDescribe(unsafe.Pointer) { release() }

// reconcile: the request record arrives flat (parent, observed, finalizing,
// config); the result<response, error> goes into a 72-byte return area
// (tag @0, payload @8).
//
//go:wasmexport reconcile
func exportReconcile(parentPtr, parentLen, obsPtr, obsLen, finalizing, cfgPtr, cfgLen uint32) unsafe.Pointer {
	parent := readString(parentPtr, parentLen)
	observed := make([]string, obsLen)
	for i := uint32(0); i < obsLen; i++ {
		e := at(obsPtr + 8*i)
		observed[i] = readString(u32(e, 0), u32(e, 4))
	}
	config := make(map[string]string, cfgLen)
	for i := uint32(0); i < cfgLen; i++ {
		e := at(cfgPtr + 16*i)
		config[readString(u32(e, 0), u32(e, 4))] = readString(u32(e, 8), u32(e, 12))
	}
	// The arguments are copied: their buffers need not stay pinned.
	release()

	resp, err := run(parent, observed, finalizing != 0, config)
	var children []string
	var status string
	if err == nil {
		children, status, err = encodeResponse(resp)
	}
	ret := alloc(72, 8)
	if err != nil {
		e := AsError(err)
		put8(ret, 0, 1)
		putBool(ret, 8, e.Permanent)
		putString(ret, 12, e.Message)
		return ret
	}
	put8(ret, 0, 0)
	p := unsafe.Add(ret, 8)
	// response (64 bytes): children @0, status @8, events @20 (20-byte
	// elements: type @0, reason @4, message @12), requeue-after-ms @32
	// (tag, u64 @40), finalized @48, patches @52 (60-byte elements).
	putList(p, 0, len(children), 8, 4, func(e unsafe.Pointer, i int) { putString(e, 0, children[i]) })
	putOptString(p, 8, status, resp.Status != nil)
	putList(p, 20, len(resp.Events), 20, 4, func(e unsafe.Pointer, i int) {
		ev := resp.Events[i]
		put8(e, 0, uint8(ev.Type))
		putString(e, 4, ev.Reason)
		putString(e, 12, ev.Message)
	})
	if resp.RequeueAfterMs != nil {
		put8(p, 32, 1)
		put64(p, 40, *resp.RequeueAfterMs)
	} else {
		put8(p, 32, 0)
	}
	putBool(p, 48, resp.Finalized)
	// patch: target @0 (36), subresource @36 (12), patch-type @48, body @52.
	putList(p, 52, len(resp.Patches), 60, 4, func(e unsafe.Pointer, i int) {
		pt := resp.Patches[i]
		putObjectRef(e, pt.Target)
		putOptString(e, 36, pt.Subresource, pt.Subresource != "")
		put8(e, 48, uint8(pt.Type))
		putString(e, 52, pt.Body)
	})
	return ret
}

//go:wasmexport cabi_post_reconcile
func postReconcile(unsafe.Pointer) { release() }

// map-related: list<object-ref> in an 8-byte return area.
//
//go:wasmexport map-related
func exportMapRelated(ptr, n uint32) unsafe.Pointer {
	text := readString(ptr, n)
	release()
	refs := mapRelated(text)
	ret := alloc(8, 4)
	putList(ret, 0, len(refs), 36, 4, func(e unsafe.Pointer, i int) { putObjectRef(e, refs[i]) })
	return ret
}

//go:wasmexport cabi_post_map-related
func postMapRelated(unsafe.Pointer) { release() }

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
func importGet(avPtr, avLen, kindPtr, kindLen, nsTag, nsPtr, nsLen, namePtr, nameLen uint32, ret unsafe.Pointer)

//go:wasmimport operon:reconciler/cluster@0.1.0 list
//go:noescape
func importList(avPtr, avLen, kindPtr, kindLen, nsTag, nsPtr, nsLen, selTag, selPtr, selLen uint32, ret unsafe.Pointer)

//go:wasmimport operon:reconciler/log@0.1.0 log
//go:noescape
func importLog(level, msgPtr, msgLen uint32)

// flat lowers a string argument: the bytes stay alive in the pinned copy.
func flat(s string) (uint32, uint32) {
	if len(s) == 0 {
		return 1, 0
	}
	buf := alloc(uint32(len(s)), 1)
	copy(unsafe.Slice((*byte)(buf), len(s)), s)
	return addr(buf), uint32(len(s))
}

func flatOpt(s string) (uint32, uint32, uint32) {
	if s == "" {
		return 0, 0, 0
	}
	p, n := flat(s)
	return 1, p, n
}

var clusterErrorKinds = [...]string{"forbidden", "unknown kind", "invalid"}

// clusterError reads a cluster-error variant at p (tag, string @4).
func clusterError(p unsafe.Pointer) error {
	tag := u8(p, 0)
	kind := "cluster error"
	if int(tag) < len(clusterErrorKinds) {
		kind = clusterErrorKinds[tag]
	}
	return &ClusterError{Kind: kind, Message: readString(u32(p, 4), u32(p, 8))}
}

func clusterGet(apiVersion, kind, namespace, name string) (string, bool, error) {
	avP, avN := flat(apiVersion)
	kP, kN := flat(kind)
	nsT, nsP, nsN := flatOpt(namespace)
	nP, nN := flat(name)
	ret := alloc(16, 4)
	importGet(avP, avN, kP, kN, nsT, nsP, nsN, nP, nN, ret)
	// result<option<string>, cluster-error>: tag @0, payload @4.
	if u8(ret, 0) != 0 {
		return "", false, clusterError(unsafe.Add(ret, 4))
	}
	if u8(ret, 4) == 0 {
		return "", false, nil
	}
	return readString(u32(ret, 8), u32(ret, 12)), true, nil
}

func clusterList(apiVersion, kind, namespace, selector string) ([]string, error) {
	avP, avN := flat(apiVersion)
	kP, kN := flat(kind)
	nsT, nsP, nsN := flatOpt(namespace)
	sT, sP, sN := flatOpt(selector)
	ret := alloc(16, 4)
	importList(avP, avN, kP, kN, nsT, nsP, nsN, sT, sP, sN, ret)
	// result<list<string>, cluster-error>: tag @0, payload @4.
	if u8(ret, 0) != 0 {
		return nil, clusterError(unsafe.Add(ret, 4))
	}
	ptr, n := u32(ret, 4), u32(ret, 8)
	out := make([]string, n)
	for i := uint32(0); i < n; i++ {
		e := at(ptr + 8*i)
		out[i] = readString(u32(e, 0), u32(e, 4))
	}
	return out, nil
}

func hostLog(level LogLevel, message string) {
	p, n := flat(message)
	importLog(uint32(level), p, n)
}
