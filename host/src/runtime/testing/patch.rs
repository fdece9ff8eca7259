//! The patch formats the fake API server applies: RFC 7386 merge patches
//! (also standing in for server-side apply, see [`super::fake_api`]) and
//! the RFC 6902 JSON patch operations the host sends (`test`, `add`,
//! `remove`, `replace`).

use serde_json::Value;

/// Applies an RFC 7386 merge patch: objects merge key by key, `null`
/// removes a key, anything else replaces the target whole.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Applies RFC 6902 operations in order; the first that fails (a `test`
/// that does not hold, a path that does not exist) fails the whole patch,
/// which is then not applied (the caller keeps its copy).
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch is an array")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("an operation without a path")?;
        match op["op"].as_str().unwrap_or_default() {
            "test" if doc.pointer(path) == Some(&op["value"]) => {}
            "test" => return Err(format!("the test of {path} failed")),
            "add" => add(doc, path, op["value"].clone())?,
            "remove" => remove(doc, path)?,
            "replace" => {
                let at = doc.pointer_mut(path).ok_or(format!("no {path}"))?;
                *at = op["value"].clone();
            }
            other => return Err(format!("operation {other:?} is not supported")),
        }
    }
    Ok(())
}

/// The parent's pointer and the last token (unescaped) of a JSON pointer.
fn split(path: &str) -> Result<(&str, String), String> {
    let at = path.rfind('/').ok_or(format!("{path} is not a pointer"))?;
    let last = path[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..at], last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(last, value);
        }
        Some(Value::Array(a)) if last == "-" => a.push(value),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => a.insert(i, value),
            _ => return Err(format!("no index {last} in {parent}")),
        },
        _ => return Err(format!("no {parent} to add to")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<(), String> {
    let (parent, last) = split(path)?;
    let removed = match doc.pointer_mut(parent) {
        Some(Value::Object(m)) => m.remove(&last).is_some(),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    };
    removed
        .then_some(())
        .ok_or(format!("nothing at {path} to remove"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merges_as_rfc_7386_says() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge(
            &mut doc,
            &json!({"b": {"d": null, "f": 4}, "e": [2], "g": "x"}),
        );
        assert_eq!(
            doc,
            json!({"a": 1, "b": {"c": 2, "f": 4}, "e": [2], "g": "x"})
        );
    }

    #[test]
    fn json_patches_test_add_and_remove() {
        let mut doc = json!({"metadata": {"resourceVersion": "3"}});
        let add = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "3"},
            {"op": "add", "path": "/metadata/finalizers", "value": ["a"]},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "b"},
        ]);
        json_patch(&mut doc, &add).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["a", "b"]));
        let remove = json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "a"},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ]);
        json_patch(&mut doc, &remove).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(
            json_patch(&mut doc, &remove),
            Err("the test of /metadata/finalizers/0 failed".into())
        );
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
