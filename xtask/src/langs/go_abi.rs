//! The canonical-ABI layout of world `reconciler` in `wit/`, written to
//! `sdk/go/testdata/abi_layout.json` for the Go SDK's layout test.
//!
//! Why: the Go SDK's glue (`sdk/go/abi_wasip1.go`) is written by hand on Go
//! structs that mirror the WIT types in linear memory (`sdk/go/abi_layout.go`
//! says why it is not generated). `wasm-tools component new` already refuses
//! a core module whose export and import signatures do not match the WIT,
//! but nothing there checks what sits behind the pointers: record sizes and
//! field offsets, variant payload offsets, enum numbering. This derives all
//! of it from the WIT with `wit-parser`'s `SizeAlign` and `wasm_signature`
//! (the code wit-bindgen and wasmtime compute the Canonical ABI with, rather
//! than our own reading of the spec), and `sdk/go/abi_layout_test.go`
//! compares it with the Go structs' `reflect`/`unsafe` layout, naming the
//! record and field that disagree.
//!
//! The file is checked in so that a plain `go test ./...` in `sdk/go` runs
//! the comparison, and a change of the contract shows in review as a change
//! of its layout. Every Go build (`cargo xtask build`, and so `cargo xtask
//! test` before it runs `go test`) writes it afresh from `wit/`: a WIT that
//! the Go structs no longer match fails the Go tests in CI.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use wit_parser::abi::{AbiVariant, WasmType};
use wit_parser::{
    Function, Int, LiftLowerAbi, ManglingAndAbi, Resolve, SizeAlign, Type, TypeDefKind, TypeId,
    WasmExport, WasmExportKind, WasmImport, WorldItem, WorldKey,
};

use super::common::write_if_changed;

/// Where the layout goes, relative to the repository root (Go ignores
/// `testdata` directories when it builds the package).
pub const LAYOUT_FILE: &str = "sdk/go/testdata/abi_layout.json";
/// The world the Go SDK implements.
const WORLD: &str = "reconciler";
/// Core names as wit-component expects them from a module built for the
/// synchronous ABI (`describe`, `cabi_post_describe`, `operon:…/cluster@…`).
const MANGLING: ManglingAndAbi = ManglingAndAbi::Legacy(LiftLowerAbi::Sync);

/// Writes [`LAYOUT_FILE`] from `root/wit` when its contents changed.
pub fn write_layout(root: &Path) -> Result<()> {
    let text = layout(&root.join("wit"))?;
    let out = root.join(LAYOUT_FILE);
    if std::fs::read_to_string(&out).is_ok_and(|old| old != text) {
        eprintln!("xtask: go: the WIT's layout changed: {LAYOUT_FILE} rewritten (commit it)");
    }
    write_if_changed(&out, &text)
}

/// The layout of [`WORLD`] in the WIT package at `wit`, as pretty JSON:
/// every core function with its flat signature and the WIT types of its
/// parameters and result, and every named type they reach.
fn layout(wit: &Path) -> Result<String> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(wit)
        .with_context(|| format!("parsing {}", wit.display()))?;
    let world_id = resolve.select_world(&[package], Some(WORLD))?;
    let mut sizes = SizeAlign::default();
    sizes.fill(&resolve);
    let mut walker = Walker {
        resolve: &resolve,
        sizes,
        types: BTreeMap::new(),
    };
    let world = &resolve.worlds[world_id];
    let mut functions = Vec::new();
    for (key, item) in &world.imports {
        for (interface, func) in functions_of(&resolve, key, item) {
            let (module, name) =
                resolve.wasm_import_name(MANGLING, WasmImport::Func { interface, func });
            let sig = resolve.wasm_signature(AbiVariant::GuestImport, func);
            functions.push(walker.function(
                format!("import {module} {name}"),
                &sig.params,
                &sig.results,
                Some(func),
            )?);
        }
    }
    for (key, item) in &world.exports {
        for (interface, func) in functions_of(&resolve, key, item) {
            let export = |kind| WasmExport::Func {
                interface,
                func,
                kind,
            };
            let sig = resolve.wasm_signature(AbiVariant::GuestExport, func);
            let name = resolve.wasm_export_name(MANGLING, export(WasmExportKind::Normal));
            functions.push(walker.function(
                format!("export {name}"),
                &sig.params,
                &sig.results,
                Some(func),
            )?);
            // The post-return function takes what the export returned.
            let post = resolve.wasm_export_name(MANGLING, export(WasmExportKind::PostReturn));
            functions.push(walker.function(format!("export {post}"), &sig.results, &[], None)?);
        }
    }
    let doc = json!({
        "generated": "by cargo xtask (xtask/src/langs/go_abi.rs) from wit/ with wit-parser: do not edit",
        "world": resolve.id_of_name(package, WORLD),
        "functions": functions,
        "types": walker.types,
    });
    let mut text = String::new();
    pretty(&doc, 0, &mut text);
    Ok(text + "\n")
}

/// JSON with every value on one line when it fits in about 100 columns: a
/// type's layout reads at a glance, and a change of the WIT touches few lines.
fn pretty(value: &Value, level: usize, out: &mut String) {
    let compact = value.to_string();
    let fits = 2 * level + compact.len() <= 100;
    let (open, close, items): (char, char, Vec<(Option<&String>, &Value)>) = match value {
        Value::Object(map) if !fits => ('{', '}', map.iter().map(|(k, v)| (Some(k), v)).collect()),
        Value::Array(list) if !fits => ('[', ']', list.iter().map(|v| (None, v)).collect()),
        _ => {
            out.push_str(&compact);
            return;
        }
    };
    out.push(open);
    for (i, (key, item)) in items.into_iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        out.push_str(&"  ".repeat(level + 1));
        if let Some(key) = key {
            out.push_str(&Value::from(key.as_str()).to_string());
            out.push_str(": ");
        }
        pretty(item, level + 1, out);
    }
    out.push('\n');
    out.push_str(&"  ".repeat(level));
    out.push(close);
}

/// The functions a world item brings: an interface's, or the item itself.
fn functions_of<'a>(
    resolve: &'a Resolve,
    key: &'a WorldKey,
    item: &'a WorldItem,
) -> Vec<(Option<&'a WorldKey>, &'a Function)> {
    match item {
        WorldItem::Interface { id, .. } => resolve.interfaces[*id]
            .functions
            .values()
            .map(|f| (Some(key), f))
            .collect(),
        WorldItem::Function(f) => vec![(None, f)],
        WorldItem::Type { .. } => Vec::new(),
    }
}

/// Turns WIT types into JSON nodes, collecting named types once in `types`.
struct Walker<'a> {
    resolve: &'a Resolve,
    sizes: SizeAlign,
    types: BTreeMap<String, Value>,
}

impl Walker<'_> {
    fn function(
        &mut self,
        name: String,
        params: &[WasmType],
        results: &[WasmType],
        func: Option<&Function>,
    ) -> Result<Value> {
        let mut node = json!({
            "name": name,
            "core_params": params.iter().map(|t| core_type(*t)).collect::<Vec<_>>(),
            "core_results": results.iter().map(|t| core_type(*t)).collect::<Vec<_>>(),
        });
        if let Some(func) = func {
            let params = func
                .params
                .iter()
                .map(|p| Ok(json!({"name": p.name, "type": self.ty(&p.ty)?})))
                .collect::<Result<Vec<_>>>()?;
            node["params"] = Value::Array(params);
            if let Some(result) = &func.result {
                node["result"] = self.ty(result)?;
            }
        }
        Ok(node)
    }

    /// A type as a node: primitives and anonymous types inline, named types
    /// as `{"ref": name}` with their definition in `types`.
    fn ty(&mut self, ty: &Type) -> Result<Value> {
        let kind = match ty {
            Type::Bool => "bool",
            Type::U8 => "u8",
            Type::U16 => "u16",
            Type::U32 => "u32",
            Type::U64 => "u64",
            Type::S8 => "s8",
            Type::S16 => "s16",
            Type::S32 => "s32",
            Type::S64 => "s64",
            Type::F32 => "f32",
            Type::F64 => "f64",
            Type::Char => "char",
            Type::String => "string",
            Type::ErrorContext => bail!("error-context is not supported by the Go SDK"),
            Type::Id(id) => return self.defined(*id),
        };
        Ok(self.sized(ty, json!({ "kind": kind })))
    }

    fn defined(&mut self, id: TypeId) -> Result<Value> {
        let def = &self.resolve.types[id];
        // `use types.{request}` in the world is an alias of the interface's type.
        if let TypeDefKind::Type(aliased) = &def.kind {
            return self.ty(aliased);
        }
        let node = match &def.kind {
            TypeDefKind::Record(record) => {
                let offsets = self
                    .sizes
                    .field_offsets(record.fields.iter().map(|f| &f.ty));
                let fields = record
                    .fields
                    .iter()
                    .zip(offsets)
                    .map(|(field, (offset, _))| {
                        Ok(json!({
                            "name": field.name,
                            "offset": offset.size_wasm32(),
                            "type": self.ty(&field.ty)?,
                        }))
                    })
                    .collect::<Result<Vec<_>>>()?;
                json!({"kind": "record", "fields": fields})
            }
            TypeDefKind::Variant(variant) => {
                let cases = variant
                    .cases
                    .iter()
                    .map(|c| (c.name.as_str(), c.ty.as_ref()))
                    .collect::<Vec<_>>();
                self.variant("variant", variant.tag(), &cases)?
            }
            TypeDefKind::Enum(e) => {
                let cases = e
                    .cases
                    .iter()
                    .map(|c| (c.name.as_str(), None))
                    .collect::<Vec<_>>();
                self.variant("enum", e.tag(), &cases)?
            }
            TypeDefKind::Option(some) => {
                self.variant("option", Int::U8, &[("none", None), ("some", Some(some))])?
            }
            TypeDefKind::Result(result) => self.variant(
                "result",
                Int::U8,
                &[("ok", result.ok.as_ref()), ("err", result.err.as_ref())],
            )?,
            TypeDefKind::List(element) => json!({"kind": "list", "element": self.ty(element)?}),
            other => bail!(
                "WIT {} `{}` is not supported by the Go SDK's layout check yet",
                other.as_str(),
                def.name.as_deref().unwrap_or("(anonymous)")
            ),
        };
        let node = self.sized(&Type::Id(id), node);
        let Some(name) = &def.name else {
            return Ok(node);
        };
        if let Some(seen) = self.types.get(name)
            && *seen != node
        {
            bail!(
                "two different WIT types are named `{name}`: the layout check keys types by name"
            );
        }
        self.types.insert(name.clone(), node);
        Ok(json!({ "ref": name }))
    }

    /// A variant, enum, option or result: discriminant, payload offset and
    /// the cases in discriminant order (each with its payload type, if any).
    fn variant(&mut self, kind: &str, tag: Int, cases: &[(&str, Option<&Type>)]) -> Result<Value> {
        let payload_offset = self.sizes.payload_offset(tag, cases.iter().map(|c| c.1));
        let cases = cases
            .iter()
            .map(|(name, ty)| {
                let mut case = json!({ "name": name });
                if let Some(ty) = ty {
                    case["type"] = self.ty(ty)?;
                }
                Ok(case)
            })
            .collect::<Result<Vec<_>>>()?;
        let discriminant = match tag {
            Int::U8 => 1,
            Int::U16 => 2,
            Int::U32 => 4,
            Int::U64 => 8,
        };
        Ok(json!({
            "kind": kind,
            "discriminant_size": discriminant,
            "payload_offset": payload_offset.size_wasm32(),
            "cases": cases,
        }))
    }

    /// Adds wasm32 size and alignment to `node`.
    fn sized(&self, ty: &Type, mut node: Value) -> Value {
        node["size"] = json!(self.sizes.size(ty).size_wasm32());
        node["align"] = json!(self.sizes.align(ty).align_wasm32());
        node
    }
}

/// A core type on wasm32, where pointers and lengths are `i32`.
fn core_type(ty: WasmType) -> &'static str {
    match ty {
        WasmType::I32 | WasmType::Pointer | WasmType::Length => "i32",
        WasmType::I64 | WasmType::PointerOrI64 => "i64",
        WasmType::F32 => "f32",
        WasmType::F64 => "f64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected layout is the Canonical ABI's, not a re-derivation that
    /// could share the Go side's mistakes: spot-check figures worked out by
    /// hand from the spec for the contract as it is.
    #[test]
    fn layout_follows_the_canonical_abi() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let doc: Value = serde_json::from_str(&layout(&root.join("wit")).unwrap()).unwrap();
        let types = &doc["types"];
        // object-ref: two strings, option<string> (tag, then the string at 4), a string.
        let offsets: Vec<_> = types["object-ref"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(offsets, [0, 8, 16, 28]);
        assert_eq!(types["object-ref"]["size"], 36);
        // response: option<u64> aligns the record to 8.
        assert_eq!(types["response"]["align"], 8);
        assert_eq!(types["response"]["size"], 64);
        let reconcile = doc["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "export reconcile")
            .unwrap();
        // request flattens to 7 values; the result goes through a return area.
        assert_eq!(reconcile["core_params"].as_array().unwrap().len(), 7);
        assert_eq!(reconcile["core_results"], json!(["i32"]));
        assert_eq!(reconcile["result"]["size"], 72);
        assert_eq!(reconcile["result"]["payload_offset"], 8);
    }
}
