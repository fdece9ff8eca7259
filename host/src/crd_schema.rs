//! An object checked against the structural schema of its CRD, as the API
//! server checks it on `kubectl apply`, so an offline run refuses the
//! parents the cluster would refuse: a misspelt field (kubectl's strict
//! field validation), a wrong type, a value outside `enum`, `minimum`,
//! `maximum`, lengths, item counts or `pattern`, a missing `required` field.
//!
//! Written here rather than taken from a JSON Schema crate: a CRD's schema
//! is OpenAPI v3 with Kubernetes' own meaning — a field not listed is
//! unknown unless `additionalProperties` or
//! `x-kubernetes-preserve-unknown-fields` allows it (JSON Schema allows it
//! by default), `nullable`, `x-kubernetes-int-or-string` — and the API
//! server implements only a structural subset of it, which is small.
//!
//! Not checked: `metadata` (the API server's own rules), `format`, CEL
//! `x-kubernetes-validations`, list-map key uniqueness. Defaults are not
//! applied: the plugin gets the object as written.

use std::fmt;

use serde_json::Value;

/// One way an object breaks its schema, at a field path such as
/// `spec.users[0].name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub path: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// Not in the schema, and the schema keeps no unknown fields.
    UnknownField,
    /// A required field is missing.
    Required,
    WrongType {
        expected: String,
        got: &'static str,
    },
    NotInEnum {
        allowed: Vec<Value>,
    },
    /// `bound` is the schema's `minimum` or `maximum`; `exclusive` when the
    /// bound itself is outside.
    BelowMinimum {
        bound: f64,
        exclusive: bool,
    },
    AboveMaximum {
        bound: f64,
        exclusive: bool,
    },
    /// A string's length in characters, or an array's in items, outside
    /// the schema's bounds.
    Length {
        what: &'static str,
        len: u64,
        min: Option<u64>,
        max: Option<u64>,
    },
    NoMatch {
        pattern: String,
    },
    /// The schema's own `pattern` is not a regular expression.
    BadPattern {
        pattern: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        match &self.problem {
            Problem::UnknownField => write!(f, "{path}: unknown field"),
            Problem::Required => write!(f, "{path}: required"),
            Problem::WrongType { expected, got } => {
                write!(f, "{path}: must be of type {expected}, got {got}")
            }
            Problem::NotInEnum { allowed } => {
                let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
                write!(f, "{path}: must be one of {}", allowed.join(", "))
            }
            Problem::BelowMinimum { bound, exclusive } => {
                let op = if *exclusive { ">" } else { ">=" };
                write!(f, "{path}: must be {op} {bound}")
            }
            Problem::AboveMaximum { bound, exclusive } => {
                let op = if *exclusive { "<" } else { "<=" };
                write!(f, "{path}: must be {op} {bound}")
            }
            Problem::Length {
                what,
                len,
                min,
                max,
            } => {
                write!(f, "{path}: has {len} {what}, must have ")?;
                match (min, max) {
                    (Some(min), Some(max)) => write!(f, "{min} to {max}"),
                    (Some(min), None) => write!(f, "at least {min}"),
                    (None, Some(max)) => write!(f, "at most {max}"),
                    (None, None) => write!(f, "any number"),
                }
            }
            Problem::NoMatch { pattern } => write!(f, "{path}: must match {pattern}"),
            Problem::BadPattern { pattern } => {
                write!(
                    f,
                    "{path}: the CRD's pattern {pattern} is not a regular expression"
                )
            }
        }
    }
}

/// The `openAPIV3Schema` of `apiVersion`/`kind` among CRDs given as JSON
/// text; none when no CRD defines that version of the kind.
pub fn find<'a>(
    crds: impl IntoIterator<Item = &'a str>,
    api_version: &str,
    kind: &str,
) -> Option<Value> {
    let (group, version) = api_version.rsplit_once('/')?;
    crds.into_iter().find_map(|text| {
        let mut crd: Value = serde_json::from_str(text).ok()?;
        let spec = crd.get_mut("spec")?;
        if spec["group"] != group || spec["names"]["kind"] != kind {
            return None;
        }
        let versions = spec.get_mut("versions")?.as_array_mut()?;
        let served = versions.iter_mut().find(|v| v["name"] == version)?;
        Some(served.pointer_mut("/schema/openAPIV3Schema")?.take())
    })
}

/// Every violation of `schema` by `object`, in field order. The root's
/// `apiVersion`, `kind` and `metadata` are the API server's own.
pub fn validate(object: &Value, schema: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(fields) = object.as_object() else {
        check(object, schema, "", &mut out);
        return out;
    };
    let mut rest = fields.clone();
    for own in ["apiVersion", "kind", "metadata"] {
        rest.remove(own);
    }
    check(&Value::Object(rest), schema, "", &mut out);
    out
}

fn child(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        // YAML's `3.0` is an integer to the API server too.
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn check(value: &Value, schema: &Value, path: &str, out: &mut Vec<Violation>) {
    let mut push = |problem| {
        out.push(Violation {
            path: path.to_string(),
            problem,
        })
    };
    // A null where the schema is not nullable is pruned by the API server,
    // not refused.
    if value.is_null() {
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_string() || has_type(value, "integer")) {
            push(Problem::WrongType {
                expected: "integer or string".into(),
                got: type_name(value),
            });
        }
        return;
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !has_type(value, ty)
    {
        push(Problem::WrongType {
            expected: ty.into(),
            got: type_name(value),
        });
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        push(Problem::NotInEnum {
            allowed: allowed.clone(),
        });
    }
    match value {
        Value::Number(n) => {
            if let Some(p) = bounds(n.as_f64().unwrap_or(0.0), schema) {
                push(p);
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(p) = length("characters", len, schema, "minLength", "maxLength") {
                push(p);
            }
            if let Some(p) = pattern(s, schema) {
                push(p);
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(p) = length("items", len, schema, "minItems", "maxItems") {
                push(p);
            }
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(v, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(fields) => object(fields, schema, path, out),
        _ => {}
    }
}

fn bounds(n: f64, schema: &Value) -> Option<Problem> {
    let bound = |key| schema.get(key).and_then(Value::as_f64);
    if let Some(min) = bound("minimum") {
        let exclusive = flag(schema, "exclusiveMinimum");
        if n < min || (exclusive && n == min) {
            return Some(Problem::BelowMinimum {
                bound: min,
                exclusive,
            });
        }
    }
    if let Some(max) = bound("maximum") {
        let exclusive = flag(schema, "exclusiveMaximum");
        if n > max || (exclusive && n == max) {
            return Some(Problem::AboveMaximum {
                bound: max,
                exclusive,
            });
        }
    }
    None
}

fn length(
    what: &'static str,
    len: u64,
    schema: &Value,
    min_key: &str,
    max_key: &str,
) -> Option<Problem> {
    let (min, max) = (
        schema.get(min_key).and_then(Value::as_u64),
        schema.get(max_key).and_then(Value::as_u64),
    );
    let outside = min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m);
    outside.then_some(Problem::Length {
        what,
        len,
        min,
        max,
    })
}

fn pattern(s: &str, schema: &Value) -> Option<Problem> {
    let pattern = schema.get("pattern")?.as_str()?;
    match regex::Regex::new(pattern) {
        Ok(re) if re.is_match(s) => None,
        Ok(_) => Some(Problem::NoMatch {
            pattern: pattern.into(),
        }),
        Err(_) => Some(Problem::BadPattern {
            pattern: pattern.into(),
        }),
    }
}

fn object(
    fields: &serde_json::Map<String, Value>,
    schema: &Value,
    path: &str,
    out: &mut Vec<Violation>,
) {
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if fields.get(name).is_none_or(Value::is_null) {
            out.push(Violation {
                path: child(path, name),
                problem: Problem::Required,
            });
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let keeps_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields")
        || additional.and_then(Value::as_bool) == Some(true);
    for (name, value) in fields {
        let at = child(path, name);
        match (properties.and_then(|p| p.get(name)), additional) {
            (Some(field), _) => check(value, field, &at, out),
            (None, Some(extra)) if extra.is_object() => check(value, extra, &at, out),
            (None, _) if keeps_unknown => {}
            (None, _) => out.push(Violation {
                path: at,
                problem: Problem::UnknownField,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 9},
                "mode": {"type": "string", "enum": ["fast", "safe"]},
                "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                "port": {"x-kubernetes-int-or-string": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "users": {"type": "array", "maxItems": 2, "items": {
                    "type": "object", "properties": {"name": {"type": "string"}}}},
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }})
    }

    fn problems(spec: Value) -> Vec<String> {
        let object =
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": spec});
        validate(&object, &schema())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_valid_object_passes() {
        let spec = json!({"size": 3, "mode": "safe", "name": "abc", "port": "http",
            "labels": {"a": "b"}, "extra": {"any": [1]}, "users": [{"name": "u"}]});
        assert_eq!(problems(spec), Vec::<String>::new());
        assert_eq!(
            problems(json!({"size": 3.0, "port": 80, "mode": null})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_violation_names_its_field() {
        let spec = json!({"sise": 3, "mode": "quick", "name": "ABCDEFG", "port": true,
            "labels": {"a": 1}, "users": [{"nam": "u"}, {}, {}]});
        assert_eq!(
            problems(spec),
            [
                "spec.size: required",
                "spec.labels.a: must be of type string, got integer",
                "spec.mode: must be one of \"fast\", \"safe\"",
                "spec.name: has 7 characters, must have at most 5",
                "spec.name: must match ^[a-z]+$",
                "spec.port: must be of type integer or string, got boolean",
                "spec.sise: unknown field",
                "spec.users: has 3 items, must have at most 2",
                "spec.users[0].nam: unknown field",
            ]
        );
        assert_eq!(problems(json!({"size": 0})), ["spec.size: must be >= 1"]);
        assert_eq!(
            problems(json!({"size": "3"})),
            ["spec.size: must be of type integer, got string"]
        );
    }

    #[test]
    fn unknown_top_level_fields_are_refused_and_the_api_servers_own_are_not() {
        let object = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"anything": 1},
            "spec": {"size": 1}, "sepc": {}});
        let found: Vec<String> = validate(&object, &schema())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found, ["sepc: unknown field"]);
    }

    #[test]
    fn the_schema_of_the_served_version_is_found() {
        let crd = json!({"spec": {"group": "x", "names": {"kind": "K"}, "versions": [
            {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
        .to_string();
        assert_eq!(
            find([crd.as_str()], "x/v1", "K"),
            Some(json!({"type": "object"}))
        );
        assert_eq!(find([crd.as_str()], "x/v2", "K"), None);
        assert_eq!(find([crd.as_str()], "y/v1", "K"), None);
    }
}
