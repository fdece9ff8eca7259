package operon

// The canonical ABI of world operon:reconciler/reconciler@0.1.0 as Go types.
//
// Every WIT type that crosses linear memory has a Go type here with the same
// layout on wasm32 (size, alignment, field offsets), so that the glue in
// abi_wasip1.go reads and writes fields by name, never by byte offset. The
// structs carry structs.HostLayout: the Go compiler then accepts pointers to
// them in //go:wasmexport and //go:wasmimport signatures, and rejects any
// field a host cannot read (a Go pointer, an int of Go's word size). A record
// has one field per WIT field, in the WIT's order, tagged with the WIT name.
//
// abi_layout_test.go holds all of it to the WIT: it compares these types, and
// the core signatures below, with the layout `cargo xtask build` derives from
// wit/ with wit-parser (testdata/abi_layout.json), and names the record and
// field that disagree. `wasm-tools component new` checks the core signatures
// too, but nothing in the toolchain looks behind the pointers.
//
// Why by hand rather than generated: wit-bindgen-cli 0.61.1's Go generator
// (`wit-bindgen go --pkg-name ...`) was tried on this WIT. Its output needs
// Go 1.25 (its runtime module, go.bytecodealliance.org/pkg v0.2.3, says so,
// and the SDK supports 1.24), links only with -ldflags=-checklinkname=0 (it
// reaches runtime.sbrk through go:linkname, which the linker otherwise
// refuses), puts a third-party module into every plugin's build, and its
// types (witTypes.Option, witTypes.Result, its own Registration) would still
// need converting to the SDK's: about 1 000 generated lines for the 400 they
// would replace. The hand-written glue needs no module, and the test keeps it
// honest.

import (
	"structs"
	"unsafe"
)

// abiString is a WIT string: Len bytes of UTF-8 at Ptr.
type abiString struct {
	_   structs.HostLayout
	Ptr uint32
	Len uint32
}

// abiList is a WIT list<T>: Len elements laid out as T, from Ptr.
type abiList[T any] struct {
	_   structs.HostLayout
	Ptr uint32
	Len uint32
}

// abiOption is a WIT option<T>.
type abiOption[T any] struct {
	_    structs.HostLayout
	Some bool
	Val  T
}

// abiVariant is a WIT variant whose cases carry P or nothing, with the
// discriminant typed D (whose constants number the cases).
type abiVariant[D ~uint8, P any] struct {
	_   structs.HostLayout
	Tag D
	Val P
}

// abiResult is a WIT result<O, E>. Go has no unions: the payload is stored as
// L, the larger of O and E, aligned for both, and read through ok and err.
type abiResult[O, E, L any] struct {
	_       structs.HostLayout
	IsErr   bool
	_       [0]O
	_       [0]E
	payload L
}

func (r *abiResult[O, E, L]) ok() *O  { return (*O)(unsafe.Pointer(&r.payload)) }
func (r *abiResult[O, E, L]) err() *E { return (*E)(unsafe.Pointer(&r.payload)) }

type abiGvk struct {
	_       structs.HostLayout
	Group   abiString `wit:"group"`
	Version abiString `wit:"version"`
	Kind    abiString `wit:"kind"`
}

type abiObjectRef struct {
	_          structs.HostLayout
	APIVersion abiString            `wit:"api-version"`
	Kind       abiString            `wit:"kind"`
	Namespace  abiOption[abiString] `wit:"namespace"`
	Name       abiString            `wit:"name"`
}

type abiParentKind struct {
	_          structs.HostLayout
	Kind       abiGvk `wit:"kind"`
	Namespaced bool   `wit:"namespaced"`
}

// abiRelatedMapping: label and field carry the key, custom and namespace nothing.
type abiRelatedMapping = abiVariant[MappingKind, abiString]

type abiRelatedKind struct {
	_       structs.HostLayout
	Kind    abiGvk            `wit:"kind"`
	Mapping abiRelatedMapping `wit:"mapping"`
}

type abiCapabilities struct {
	_       structs.HostLayout
	Reads   abiList[abiGvk] `wit:"reads"`
	Patches abiList[abiGvk] `wit:"patches"`
	Secrets bool            `wit:"secrets"`
}

type abiRegistration struct {
	_            structs.HostLayout
	Name         abiString               `wit:"name"`
	Version      abiString               `wit:"version"`
	Parent       abiParentKind           `wit:"parent"`
	Owns         abiList[abiGvk]         `wit:"owns"`
	Related      abiList[abiRelatedKind] `wit:"related"`
	Finalizer    bool                    `wit:"finalizer"`
	CRDs         abiList[abiString]      `wit:"crds"`
	Capabilities abiCapabilities         `wit:"capabilities"`
}

type abiConfigEntry struct {
	_     structs.HostLayout
	Key   abiString `wit:"key"`
	Value abiString `wit:"value"`
}

// abiRequest arrives flattened into reconcile's parameters; its lists are
// read from linear memory.
type abiRequest struct {
	_          structs.HostLayout
	Parent     abiString               `wit:"parent"`
	Observed   abiList[abiString]      `wit:"observed"`
	Finalizing bool                    `wit:"finalizing"`
	Config     abiList[abiConfigEntry] `wit:"config"`
}

type abiEvent struct {
	_       structs.HostLayout
	Type    EventType `wit:"type"`
	Reason  abiString `wit:"reason"`
	Message abiString `wit:"message"`
}

type abiPatch struct {
	_           structs.HostLayout
	Target      abiObjectRef         `wit:"target"`
	Subresource abiOption[abiString] `wit:"subresource"`
	PatchType   PatchType            `wit:"patch-type"`
	Body        abiString            `wit:"body"`
}

type abiResponse struct {
	_              structs.HostLayout
	Children       abiList[abiString]   `wit:"children"`
	Status         abiOption[abiString] `wit:"status"`
	Events         abiList[abiEvent]    `wit:"events"`
	RequeueAfterMs abiOption[uint64]    `wit:"requeue-after-ms"`
	Finalized      bool                 `wit:"finalized"`
	Patches        abiList[abiPatch]    `wit:"patches"`
}

// errorCase numbers the cases of the WIT variant error.
type errorCase uint8

const (
	errorRetryable errorCase = iota
	errorPermanent
)

type abiError = abiVariant[errorCase, abiString]

// clusterErrorCase numbers the cases of the WIT variant cluster-error.
type clusterErrorCase uint8

const (
	clusterForbidden clusterErrorCase = iota
	clusterUnknownKind
	clusterInvalid
)

type abiClusterError = abiVariant[clusterErrorCase, abiString]

type (
	abiReconcileResult = abiResult[abiResponse, abiError, abiResponse]
	abiGetResult       = abiResult[abiOption[abiString], abiClusterError, abiClusterError]
	abiListResult      = abiResult[abiList[abiString], abiClusterError, abiClusterError]
)

// The core signatures of the glue's exports and imports, as the Canonical ABI
// flattens the WIT functions (Go passes bool, int32, uint32 and pointers as
// i32, 64-bit integers as i64). abi_wasip1.go declares that its functions
// have these types; the test compares them with the WIT.
type (
	describeFunc       func() *abiRegistration
	postDescribeFunc   func(*abiRegistration)
	reconcileFunc      func(parentPtr, parentLen, observedPtr, observedLen uint32, finalizing bool, configPtr, configLen uint32) *abiReconcileResult
	postReconcileFunc  func(*abiReconcileResult)
	mapRelatedFunc     func(relatedPtr, relatedLen uint32) *abiList[abiObjectRef]
	postMapRelatedFunc func(*abiList[abiObjectRef])
	clusterGetFunc     func(apiVersionPtr, apiVersionLen, kindPtr, kindLen uint32, hasNamespace bool, namespacePtr, namespaceLen, namePtr, nameLen uint32, ret *abiGetResult)
	clusterListFunc    func(apiVersionPtr, apiVersionLen, kindPtr, kindLen uint32, hasNamespace bool, namespacePtr, namespaceLen uint32, hasSelector bool, selectorPtr, selectorLen uint32, ret *abiListResult)
	logFunc            func(level, messagePtr, messageLen uint32)
)
