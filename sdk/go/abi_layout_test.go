package operon

// The glue's canonical ABI held to the WIT: every type of abi_layout.go is
// compared, size, alignment, field and payload offsets, field names and case
// numbering, with the layout `cargo xtask build` derives from wit/ with
// wit-parser (testdata/abi_layout.json, rewritten on every Go build), and
// every core signature with the WIT's flattening. A disagreement names the
// WIT record (or variant, enum) and field, and the Go type and field.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"structs"
	"testing"
	"unsafe"
)

// layoutFile is written by xtask/src/langs/go_abi.rs.
const layoutFile = "testdata/abi_layout.json"

// glueFunc is the Go side of one core function: its signature, and the Go
// types that mirror its WIT parameters and result in linear memory.
type glueFunc struct {
	core   reflect.Type
	params []reflect.Type
	result reflect.Type
}

// glue is every core function abi_wasip1.go exports or imports, keyed as
// the layout names them ("export <name>", "import <module> <name>").
var glue = map[string]glueFunc{
	"export describe": {
		core:   reflect.TypeFor[describeFunc](),
		result: reflect.TypeFor[abiRegistration](),
	},
	"export cabi_post_describe": {core: reflect.TypeFor[postDescribeFunc]()},
	"export reconcile": {
		core:   reflect.TypeFor[reconcileFunc](),
		params: typesOf(abiRequest{}),
		result: reflect.TypeFor[abiReconcileResult](),
	},
	"export cabi_post_reconcile": {core: reflect.TypeFor[postReconcileFunc]()},
	"export map-related": {
		core:   reflect.TypeFor[mapRelatedFunc](),
		params: typesOf(abiString{}),
		result: reflect.TypeFor[abiList[abiObjectRef]](),
	},
	"export cabi_post_map-related": {core: reflect.TypeFor[postMapRelatedFunc]()},
	"import operon:reconciler/cluster@0.1.0 get": {
		core:   reflect.TypeFor[clusterGetFunc](),
		params: typesOf(abiString{}, abiString{}, abiOption[abiString]{}, abiString{}),
		result: reflect.TypeFor[abiGetResult](),
	},
	"import operon:reconciler/cluster@0.1.0 list": {
		core:   reflect.TypeFor[clusterListFunc](),
		params: typesOf(abiString{}, abiString{}, abiOption[abiString]{}, abiOption[abiString]{}),
		result: reflect.TypeFor[abiListResult](),
	},
	"import operon:reconciler/log@0.1.0 log": {
		core:   reflect.TypeFor[logFunc](),
		params: typesOf(Trace, abiString{}),
	},
}

func typesOf(values ...any) []reflect.Type {
	out := make([]reflect.Type, len(values))
	for i, v := range values {
		out[i] = reflect.TypeOf(v)
	}
	return out
}

// witCases: the WIT names of the cases, indexed by the Go constants that
// number them.
func (MappingKind) witCases() []string {
	return []string{MapCustom: "custom", MapLabel: "label", MapField: "field", MapNamespace: "namespace"}
}
func (EventType) witCases() []string { return []string{Normal: "normal", Warning: "warning"} }
func (PatchType) witCases() []string {
	return []string{MergePatch: "merge", JSONPatch: "json", ApplyPatch: "apply"}
}
func (LogLevel) witCases() []string {
	return []string{Trace: "trace", Debug: "debug", Info: "info", Warn: "warn", ErrorLevel: "error"}
}
func (errorCase) witCases() []string {
	return []string{errorRetryable: "retryable", errorPermanent: "permanent"}
}
func (clusterErrorCase) witCases() []string {
	return []string{clusterForbidden: "forbidden", clusterUnknownKind: "unknown-kind", clusterInvalid: "invalid"}
}

// witCase: where the payload of case c sits in the value (what the glue
// reads and writes).
func (o *abiOption[T]) witCase(string) any     { return &o.Val }
func (v *abiVariant[D, P]) witCase(string) any { return &v.Val }
func (r *abiResult[O, E, L]) witCase(c string) any {
	if c == "err" {
		return r.err()
	}
	return r.ok()
}

// witElem: the Go type of a list's elements.
func (abiList[T]) witElem() reflect.Type { return reflect.TypeFor[T]() }

// The layout as xtask writes it.
type (
	witLayout struct {
		Generated string              `json:"generated"`
		World     string              `json:"world"`
		Functions []witFunction       `json:"functions"`
		Types     map[string]*witType `json:"types"`
	}
	witFunction struct {
		Name        string     `json:"name"`
		CoreParams  []string   `json:"core_params"`
		CoreResults []string   `json:"core_results"`
		Params      []witParam `json:"params"`
		Result      *witType   `json:"result"`
	}
	witParam struct {
		Name string   `json:"name"`
		Type *witType `json:"type"`
	}
	witType struct {
		Ref              string     `json:"ref"`
		Kind             string     `json:"kind"`
		Size             uintptr    `json:"size"`
		Align            uintptr    `json:"align"`
		Fields           []witField `json:"fields"`
		Element          *witType   `json:"element"`
		DiscriminantSize uintptr    `json:"discriminant_size"`
		PayloadOffset    uintptr    `json:"payload_offset"`
		Cases            []witCase  `json:"cases"`
	}
	witField struct {
		Name   string   `json:"name"`
		Offset uintptr  `json:"offset"`
		Type   *witType `json:"type"`
	}
	witCase struct {
		Name string   `json:"name"`
		Type *witType `json:"type"`
	}
)

func TestABIMatchesWIT(t *testing.T) {
	// Measured natively, the structs are laid out as on GOARCH=wasm only if
	// 64-bit integers are 8-aligned here too (any 64-bit GOARCH).
	if unsafe.Alignof(uint64(0)) != 8 {
		t.Fatalf("uint64 is %d-aligned on this GOARCH, 8 on wasm: run the layout test on a 64-bit one", unsafe.Alignof(uint64(0)))
	}
	layout := readLayout(t)
	if len(layout.Functions) == 0 {
		t.Fatalf("%s lists no functions", layoutFile)
	}
	for _, e := range compare(layout) {
		t.Error(e)
	}
}

// The check itself must see a disagreement: a Go record that puts a field at
// another offset than the WIT, and a WIT enum whose cases the Go constants
// number differently.
func TestABICheckReportsDisagreements(t *testing.T) {
	layout := readLayout(t)
	already := len(compare(layout)) // TestABIMatchesWIT reports these
	gvk := *layout.Types["gvk"]
	gvk.Fields = slices.Clone(gvk.Fields)
	gvk.Fields[1].Offset = 12
	layout.Types["gvk"] = &gvk
	levels := *layout.Types["log-level"]
	levels.Cases = slices.Clone(levels.Cases)
	levels.Cases[0], levels.Cases[1] = levels.Cases[1], levels.Cases[0]
	layout.Types["log-level"] = &levels

	want := []string{
		"record gvk, field version: offset 12 in the WIT, 8 in Go (abiGvk.Version)",
		"enum log-level: cases [debug trace info warn error] in the WIT, [trace debug info warn error] in Go (LogLevel)",
	}
	got := compare(layout)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing %q in:\n%v", w, got)
		}
	}
	if len(got) != already+len(want) {
		t.Errorf("want %d more disagreements than the WIT's own %d, got %d:\n%v", len(want), already, len(got), got)
	}
}

func readLayout(t *testing.T) *witLayout {
	t.Helper()
	text, err := os.ReadFile(layoutFile)
	if err != nil {
		t.Fatalf("%v (cargo xtask build writes it from wit/)", err)
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	// A new kind of fact in the layout must be checked here, not ignored.
	dec.DisallowUnknownFields()
	var layout witLayout
	if err := dec.Decode(&layout); err != nil {
		t.Fatalf("%s: %v", layoutFile, err)
	}
	return &layout
}

// compare returns every disagreement between the layout and the Go glue.
func compare(layout *witLayout) []string {
	c := &checker{types: layout.Types, seen: map[string]bool{}}
	inWIT := map[string]bool{}
	for _, f := range layout.Functions {
		inWIT[f.Name] = true
		g, ok := glue[f.Name]
		if !ok {
			c.fail("%s: in the WIT, not in the Go glue", f.Name)
			continue
		}
		c.core(f, g.core)
		if len(f.Params) != len(g.params) {
			c.fail("%s: %d parameters in the WIT, %d mirrored in Go", f.Name, len(f.Params), len(g.params))
		} else {
			for i, p := range f.Params {
				c.check(f.Name+", parameter "+p.Name, p.Type, g.params[i])
			}
		}
		switch {
		case (f.Result == nil) != (g.result == nil):
			c.fail("%s: result %s in the WIT, %v mirrored in Go", f.Name, describe(f.Result), g.result)
		case f.Result != nil:
			c.check(f.Name+", result", f.Result, g.result)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(glue)) {
		if !inWIT[name] {
			c.fail("%s: in the Go glue, not in the WIT", name)
		}
	}
	return c.errs
}

type checker struct {
	types map[string]*witType
	// seen: named WIT types already compared with a Go type, so that one
	// disagreement in gvk is reported once, not at every use.
	seen map[string]bool
	errs []string
}

// fail records a disagreement; Go types are named as in this package's source.
func (c *checker) fail(format string, args ...any) {
	for i, a := range args {
		if t, ok := a.(reflect.Type); ok {
			args[i] = goName(t)
		}
	}
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// goName is t as this package's source spells it: abiList[abiGvk], not
// operon.abiList[github.com/operon/operon/sdk/go.abiGvk].
func goName(t reflect.Type) string {
	pkg := reflect.TypeFor[abiString]().PkgPath()
	return strings.TrimPrefix(strings.ReplaceAll(t.String(), pkg+".", ""), "operon.")
}

var hostLayout = reflect.TypeFor[structs.HostLayout]()

// core compares a function's flat signature with its Go type's.
func (c *checker) core(f witFunction, g reflect.Type) {
	var params, results []string
	for i := range g.NumIn() {
		params = append(params, coreType(g.In(i)))
	}
	for i := range g.NumOut() {
		results = append(results, coreType(g.Out(i)))
	}
	if !slices.Equal(params, f.CoreParams) || !slices.Equal(results, f.CoreResults) {
		c.fail("%s: core signature %v -> %v in the WIT, %v -> %v in Go (%s)",
			f.Name, f.CoreParams, f.CoreResults, params, results, g)
	}
}

// coreType is the wasm32 type Go passes t as (cmd/compile's wasmimport table).
func coreType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool, reflect.Int32, reflect.Uint32, reflect.Uintptr, reflect.Pointer, reflect.UnsafePointer:
		return "i32"
	case reflect.Int64, reflect.Uint64:
		return "i64"
	case reflect.Float32:
		return "f32"
	case reflect.Float64:
		return "f64"
	}
	return "(no core type: " + t.String() + ")"
}

// primitives: the Go kind of each WIT primitive.
var primitives = map[string]reflect.Kind{
	"bool": reflect.Bool, "u8": reflect.Uint8, "u16": reflect.Uint16, "u32": reflect.Uint32,
	"u64": reflect.Uint64, "s8": reflect.Int8, "s16": reflect.Int16, "s32": reflect.Int32,
	"s64": reflect.Int64, "f32": reflect.Float32, "f64": reflect.Float64, "char": reflect.Int32,
}

// check compares the WIT type w, met at where, with the Go type g.
func (c *checker) check(where string, w *witType, g reflect.Type) {
	if w.Ref != "" {
		def, ok := c.types[w.Ref]
		if !ok {
			c.fail("%s: type %s is not in %s", where, w.Ref, layoutFile)
			return
		}
		key := w.Ref + " as " + g.String()
		if c.seen[key] {
			return
		}
		c.seen[key] = true
		where, w = def.Kind+" "+w.Ref, def
	}
	if kind, ok := primitives[w.Kind]; ok {
		if g.Kind() != kind {
			c.fail("%s: %s in the WIT, %s in Go", where, w.Kind, g)
		}
		return
	}
	if uintptr(g.Size()) != w.Size || uintptr(g.Align()) != w.Align {
		c.fail("%s: size %d, alignment %d in the WIT; size %d, alignment %d in Go (%s)",
			where, w.Size, w.Align, g.Size(), g.Align(), g)
	}
	switch w.Kind {
	case "string":
		if g != reflect.TypeFor[abiString]() {
			c.fail("%s: string in the WIT, %s in Go (want abiString)", where, g)
		}
	case "list":
		l, ok := reflect.Zero(g).Interface().(interface{ witElem() reflect.Type })
		if !ok {
			c.fail("%s: list in the WIT, %s in Go (want abiList)", where, g)
			return
		}
		c.check(where+", element", w.Element, l.witElem())
	case "record":
		c.record(where, w, g)
	case "enum":
		c.caseNames(where, w, g)
	case "variant", "option", "result":
		c.variant(where, w, g)
	default:
		c.fail("%s: the check does not know WIT %s", where, w.Kind)
	}
}

// fieldsOf is g's fields but the HostLayout marker.
func fieldsOf(g reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range g.NumField() {
		if f := g.Field(i); f.Type != hostLayout {
			out = append(out, f)
		}
	}
	return out
}

func (c *checker) record(where string, w *witType, g reflect.Type) {
	if g.Kind() != reflect.Struct {
		c.fail("%s: record in the WIT, %s in Go", where, g)
		return
	}
	fields := fieldsOf(g)
	for i, wf := range w.Fields {
		at := where + ", field " + wf.Name
		if i >= len(fields) {
			c.fail("%s: at offset %d in the WIT, not in Go (%s)", at, wf.Offset, g)
			continue
		}
		gf := fields[i]
		if tag := gf.Tag.Get("wit"); tag != wf.Name {
			c.fail("%s: field %d in the WIT, but Go's field %d is %s.%s (wit:%q)", at, i+1, i+1, g, gf.Name, tag)
			continue
		}
		if gf.Offset != wf.Offset {
			c.fail("%s: offset %d in the WIT, %d in Go (%s.%s)", at, wf.Offset, gf.Offset, g, gf.Name)
		}
		c.check(at, wf.Type, gf.Type)
	}
	for _, gf := range fields[min(len(w.Fields), len(fields)):] {
		c.fail("%s: Go field %s.%s (wit:%q) is not in the WIT", where, g, gf.Name, gf.Tag.Get("wit"))
	}
}

// variant checks a variant, option or result: the discriminant first, then
// each case's payload where the glue reaches it.
func (c *checker) variant(where string, w *witType, g reflect.Type) {
	var fields []reflect.StructField
	if g.Kind() == reflect.Struct {
		fields = fieldsOf(g)
	}
	if len(fields) == 0 {
		c.fail("%s: %s in the WIT, %s in Go", where, w.Kind, g)
		return
	}
	tag := fields[0]
	if tag.Offset != 0 || uintptr(tag.Type.Size()) != w.DiscriminantSize {
		c.fail("%s: a %d-byte discriminant at offset 0 in the WIT, %d bytes at %d in Go (%s.%s)",
			where, w.DiscriminantSize, tag.Type.Size(), tag.Offset, g, tag.Name)
	}
	if w.Kind == "variant" {
		c.caseNames(where, w, tag.Type)
	}
	for _, wc := range w.Cases {
		if wc.Type == nil {
			continue
		}
		at := where + ", case " + wc.Name
		v := reflect.New(g)
		caser, ok := v.Interface().(interface{ witCase(string) any })
		if !ok {
			c.fail("%s: Go %s has no witCase method to find the payload", at, g)
			return
		}
		payload := reflect.ValueOf(caser.witCase(wc.Name))
		if offset := payload.Pointer() - v.Pointer(); offset != w.PayloadOffset {
			c.fail("%s: payload at offset %d in the WIT, %d in Go (%s)", at, w.PayloadOffset, offset, g)
		}
		c.check(at, wc.Type, payload.Type().Elem())
	}
}

// caseNames compares the WIT's cases with the Go constants that number them.
func (c *checker) caseNames(where string, w *witType, d reflect.Type) {
	named, ok := reflect.Zero(d).Interface().(interface{ witCases() []string })
	if !ok {
		c.fail("%s: Go %s does not name its cases (no witCases method)", where, d)
		return
	}
	want := make([]string, len(w.Cases))
	for i, wc := range w.Cases {
		want[i] = wc.Name
	}
	if got := named.witCases(); !slices.Equal(want, got) {
		c.fail("%s: cases %v in the WIT, %v in Go (%s)", where, want, got, d)
	}
}

func describe(w *witType) string {
	if w == nil {
		return "none"
	}
	if w.Ref != "" {
		return w.Ref
	}
	return w.Kind
}
