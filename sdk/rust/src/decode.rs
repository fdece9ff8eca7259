//! Typed views of JSON objects, with errors that name the offending field.
//!
//! serde's messages say *what* is wrong (`invalid type: string "3", expected
//! i32`) but not *where*. A user reading a failed reconcile wants
//! `spec.size: invalid type ...`. Rather than carrying a path-tracking
//! deserializer into every plugin, the value is deserialized from its
//! pretty-printed text, where every field sits on its own line: the line
//! serde_json reports, walked back through its indentation, spells the path.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// Deserializes `value` into `T`. On failure the message names `what` (e.g.
/// `parent Memcached demo/example`) and the JSON path of the bad field.
///
/// Bad data from the cluster or the host is not something a retry fixes, so
/// the error is [`Error::Permanent`].
///
/// ```
/// # use serde::Deserialize;
/// #[derive(Deserialize)]
/// struct Spec { size: i32 }
/// #[derive(Deserialize)]
/// struct Obj { spec: Spec }
/// let v = serde_json::json!({"spec": {"size": "three"}});
/// let err = operon_sdk::decode::<Obj>(&v, "parent").err().unwrap();
/// assert!(err.message().starts_with("parent: spec.size: invalid type"), "{err}");
/// ```
pub fn decode<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, Error> {
    // The fast path needs no text at all; only failures pay for the pretty
    // print that locates the field.
    match T::deserialize(value) {
        Ok(v) => Ok(v),
        Err(first) => Err(Error::Permanent(describe_failure::<T>(value, what, first))),
    }
}

fn describe_failure<T: DeserializeOwned>(
    value: &Value,
    what: &str,
    first: serde_json::Error,
) -> String {
    let pretty = match serde_json::to_string_pretty(value) {
        Ok(p) => p,
        Err(_) => return format!("{what}: {first}"),
    };
    let err = match serde_json::from_str::<T>(&pretty) {
        Ok(_) => return format!("{what}: {first}"),
        Err(e) => e,
    };
    let message = strip_position(&err);
    match path_at_line(&pretty, err.line()) {
        Some(path) if !path.is_empty() => format!("{what}: {path}: {message}"),
        _ => format!("{what}: {message}"),
    }
}

/// serde_json appends ` at line L column C`, which means nothing to someone
/// who never saw the pretty-printed text.
fn strip_position(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match full.strip_suffix(&suffix) {
        Some(s) => s.to_string(),
        None => full,
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The key of a `"key": value` line, unescaped.
fn key_of(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('"') {
        return None;
    }
    // Find the closing quote of the first string literal, honouring escapes.
    let bytes = trimmed.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => break,
            _ => i += 1,
        }
    }
    let literal = trimmed.get(..=i)?;
    let rest = trimmed.get(i + 1..)?;
    if !rest.starts_with(':') {
        return None; // a string element of an array, not a key
    }
    serde_json::from_str::<String>(literal).ok()
}

fn is_closer(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('}') || t.starts_with(']')
}

/// The dotted path (`spec.containers[0].name`) of the value on `line`
/// (1-based) of pretty-printed JSON. A closing bracket stands for its whole
/// object (serde reports a missing field there).
fn path_at_line(pretty: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = pretty.lines().collect();
    let mut at = line.checked_sub(1)?;
    if at >= lines.len() {
        at = lines.len().checked_sub(1)?;
    }
    if is_closer(lines[at]) {
        // Jump to the opener at the same indentation.
        let depth = indent(lines[at]);
        at = (0..at)
            .rev()
            .find(|&i| indent(lines[i]) == depth && !is_closer(lines[i]))?;
    }
    let mut parts: Vec<String> = Vec::new();
    loop {
        let depth = indent(lines[at]);
        if depth == 0 {
            break;
        }
        let parent = (0..at).rev().find(|&i| indent(lines[i]) < depth)?;
        match key_of(lines[at]) {
            Some(key) => parts.push(key),
            None => {
                // An array element: count the elements that start before it.
                let index = (parent + 1..at)
                    .filter(|&i| indent(lines[i]) == depth && !is_closer(lines[i]))
                    .count();
                parts.push(format!("[{index}]"));
            }
        }
        at = parent;
    }
    parts.reverse();
    let mut path = String::new();
    for part in parts {
        if !path.is_empty() && !part.starts_with('[') {
            path.push('.');
        }
        path.push_str(&part);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Container {
        name: String,
        port: u16,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Spec {
        size: i32,
        #[serde(default)]
        containers: Vec<Container>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Obj {
        spec: Spec,
    }

    fn msg(v: Value) -> String {
        decode::<Obj>(&v, "parent").unwrap_err().to_string()
    }

    #[test]
    fn names_a_wrong_type() {
        assert_eq!(
            msg(json!({"spec": {"size": "three"}})),
            "parent: spec.size: invalid type: string \"three\", expected i32"
        );
    }

    #[test]
    fn names_a_missing_field_by_its_object() {
        assert_eq!(
            msg(json!({"metadata": {}, "spec": {"containers": []}})),
            "parent: spec: missing field `size`"
        );
        assert_eq!(msg(json!({})), "parent: missing field `spec`");
    }

    #[test]
    fn names_array_elements() {
        let v = json!({"spec": {"size": 1, "containers": [
            {"name": "a", "port": 1},
            {"name": "b", "port": 70000},
        ]}});
        let m = msg(v);
        assert!(
            m.starts_with("parent: spec.containers[1].port: invalid value"),
            "{m}"
        );
    }

    #[test]
    fn keys_with_escapes() {
        assert_eq!(key_of(r#"  "a\"b": 1,"#).as_deref(), Some("a\"b"));
        assert_eq!(key_of(r#"  "plain","#), None);
    }

    #[test]
    fn success_is_untouched() {
        let o: Obj = decode(&json!({"spec": {"size": 2}}), "x").unwrap();
        assert_eq!(o.spec.size, 2);
    }
}
