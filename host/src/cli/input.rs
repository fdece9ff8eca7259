//! Reading objects from the files a user names on the command line.
//!
//! A file holds one object or several: YAML documents separated by `---`,
//! a JSON object, a JSON array, or a `kind: List`. Errors name the file and,
//! for syntax errors, the position.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Every object in a file, in order.
pub fn read_objects(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_objects(&text).with_context(|| format!("{}", path.display()))
}

/// Exactly one object from a file.
pub fn read_one(path: &Path) -> anyhow::Result<Value> {
    let mut objects = read_objects(path)?;
    match objects.len() {
        1 => Ok(objects.remove(0)),
        0 => bail!("{}: no object in the file", path.display()),
        n => bail!("{}: expected one object, found {n}", path.display()),
    }
}

/// Parses text as JSON (when it starts like JSON) or as YAML documents.
pub fn parse_objects(text: &str) -> anyhow::Result<Vec<Value>> {
    let trimmed = text.trim_start();
    let docs: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "invalid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            )
        })?;
        vec![value]
    } else {
        serde_saphyr::from_multiple::<Value>(text).map_err(|e| {
            // The first line says where and why; the rest is a source
            // snippet, too much for a one-line error.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            anyhow::anyhow!("invalid YAML: {}", first.trim_start_matches("error: "))
        })?
    };
    let mut objects = Vec::new();
    for doc in docs {
        flatten(doc, &mut objects)?;
    }
    Ok(objects)
}

fn flatten(doc: Value, out: &mut Vec<Value>) -> anyhow::Result<()> {
    match doc {
        Value::Null => Ok(()),
        Value::Array(items) => items.into_iter().try_for_each(|i| flatten(i, out)),
        Value::Object(ref map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            let Some(Value::Array(items)) = doc.get("items").cloned() else {
                unreachable!("checked above")
            };
            items.into_iter().try_for_each(|i| flatten(i, out))
        }
        Value::Object(_) => {
            out.push(doc);
            Ok(())
        }
        other => bail!("expected an object, found {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_json_and_lists() {
        let yaml = "a: 1\n---\nb: 2\n---\n";
        assert_eq!(parse_objects(yaml).unwrap().len(), 2);
        assert_eq!(parse_objects(r#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
        let list = "kind: List\nitems:\n- {a: 1}\n- {b: 2}\n- {c: 3}\n";
        assert_eq!(parse_objects(list).unwrap().len(), 3);
    }

    #[test]
    fn errors_give_the_position() {
        let err = parse_objects("{\"a\": 1,\n \"b\": }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = parse_objects("a: 1\nb: [1, 2\nc: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid YAML"), "{err}");
        assert!(parse_objects("just a string").is_err());
    }
}
