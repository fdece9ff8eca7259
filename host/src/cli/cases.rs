//! Golden cases on disk, as `operon test` runs them and `operon diff`
//! compares builds on them.
//!
//! A case is a directory with:
//! - `parent.yaml` (or `.json`): the parent object;
//! - `observed.yaml`: the children the host observed (optional);
//! - `related.yaml`: other objects the plugin reads through `cluster`
//!   (optional);
//! - `case.yaml`: how to call (optional): `now` (the plugin's clock),
//!   `config` (a map), `finalizing` (default: whether the parent has a
//!   `deletionTimestamp`, as the host decides) and `skipSchema` (hand over
//!   a parent the CRD refuses, to test the plugin's own checks);
//! - `expected.yaml` (or `.json`): the answer, as `operon reconcile`
//!   prints it, or `error: {<kind>: <message>}` (see
//!   [`Refusal::as_answer`](super::offline::Refusal::as_answer)).
//!
//! A directory given on the command line is one case when it holds a
//! parent, else every directory below it that does, in path order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::Value;

use super::input;
use super::offline::{Input, parse_now};

/// How a case is called, from its `case.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    now: Option<String>,
    config: BTreeMap<String, Value>,
    finalizing: Option<bool>,
    skip_schema: bool,
}

/// One case, read.
#[derive(Debug)]
pub struct Case {
    /// Its directory relative to the directory named on the command line
    /// (`.` when that is the case).
    pub name: String,
    pub input: Input,
    /// Where its expected answer is, or would be written.
    pub expected_path: PathBuf,
}

/// The format of an expected file, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// A value as a case file holds it in this format, ending in one
    /// newline: what `operon test --update` and `operon plugins record`
    /// write, read back as it was written.
    pub fn text(self, value: &impl serde::Serialize) -> Result<String, String> {
        let text = match self {
            Format::Yaml => serde_saphyr::to_string(value).map_err(|e| e.to_string())?,
            Format::Json => serde_json::to_string_pretty(value).map_err(|e| e.to_string())?,
        };
        Ok(format!("{}\n", text.trim_end()))
    }
}

impl Case {
    /// The expected answer, `None` when the case has no expected file yet.
    pub fn expected(&self) -> anyhow::Result<Option<Value>> {
        if !self.expected_path.exists() {
            return Ok(None);
        }
        Ok(Some(input::read_one(&self.expected_path)?))
    }

    pub fn format(&self) -> Format {
        match self.expected_path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// The case directories under `root`; an error when there is none.
pub fn find(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !root.is_dir() {
        bail!("{}: not a directory of cases", root.display());
    }
    let mut found = Vec::new();
    walk(root, &mut found)?;
    found.sort();
    if found.is_empty() {
        bail!(
            "{}: no case (a case is a directory with a parent.yaml)",
            root.display()
        );
    }
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if file(dir, "parent").is_some() {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, found)?;
        }
    }
    Ok(())
}

/// `dir/<stem>.yaml`, `.yml` or `.json`, whichever exists.
fn file(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["yaml", "yml", "json"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}

/// Every object of an optional file.
fn objects(dir: &Path, stem: &str) -> anyhow::Result<Vec<Value>> {
    file(dir, stem).map_or(Ok(Vec::new()), |p| input::read_objects(&p))
}

/// Reads the case in `dir`; `now` is the clock when its `case.yaml` sets
/// none.
pub fn read(root: &Path, dir: &Path, now: Option<SystemTime>) -> anyhow::Result<Case> {
    let name = match dir.strip_prefix(root) {
        Ok(p) if p.as_os_str().is_empty() => ".".to_string(),
        Ok(p) => p.display().to_string(),
        Err(_) => dir.display().to_string(),
    };
    let parent_path =
        file(dir, "parent").with_context(|| format!("{}: no parent.yaml", dir.display()))?;
    let parent = input::read_one(&parent_path)?;
    let options: Options = match file(dir, "case") {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_saphyr::from_str(&text).with_context(|| format!("{}", p.display()))?
        }
        None => Options::default(),
    };
    let mut input = Input::new(parent, objects(dir, "observed")?, objects(dir, "related")?)
        .with_context(|| format!("case {name}"))?;
    input.now = match &options.now {
        Some(t) => Some(parse_now(t).with_context(|| format!("case {name}: case.yaml now"))?),
        None => now,
    };
    input.finalizing = options.finalizing.unwrap_or_else(|| {
        input
            .parent
            .pointer("/metadata/deletionTimestamp")
            .is_some()
    });
    input.skip_schema = options.skip_schema;
    input.config = options
        .config
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let expected_path = file(dir, "expected").unwrap_or_else(|| dir.join("expected.yaml"));
    Ok(Case {
        name,
        input,
        expected_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory of this test's own.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("operon-cases-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    const PARENT: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n";

    #[test]
    fn cases_are_found_below_in_path_order() {
        let tmp = scratch("found");
        write(&tmp.join("b"), "parent.yaml", PARENT);
        write(&tmp.join("a/deeper"), "parent.json", "{}");
        write(&tmp.join("c"), "notes.txt", "");
        let found = find(&tmp).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(&tmp).unwrap())
            .collect();
        assert_eq!(names, [Path::new("a/deeper"), Path::new("b")]);
        assert_eq!(find(&tmp.join("b")).unwrap().len(), 1, "a case itself");
        let err = find(&tmp.join("c")).unwrap_err().to_string();
        assert!(err.contains("no case"), "{err}");
    }

    #[test]
    fn options_and_their_defaults() {
        let tmp = scratch("options");
        let dir = tmp.join("x");
        write(&dir, "parent.yaml", PARENT);
        let case = read(&tmp, &dir, None).unwrap();
        assert_eq!(case.name, "x");
        assert!(!case.input.finalizing && !case.input.skip_schema);
        assert_eq!(case.expected_path, dir.join("expected.yaml"));
        write(
            &dir,
            "case.yaml",
            "now: 2026-01-02T03:04:05Z\nconfig: {replicas: 3, mode: fast}\nskipSchema: true\n",
        );
        write(&dir, "expected.json", "{}");
        let case = read(&tmp, &dir, None).unwrap();
        assert_eq!(
            case.input.now,
            Some(parse_now("2026-01-02T03:04:05Z").unwrap())
        );
        assert_eq!(
            case.input.config,
            [
                ("mode".into(), "fast".into()),
                ("replicas".into(), "3".into())
            ]
        );
        assert!(case.input.skip_schema);
        assert_eq!(case.format(), Format::Json);
        write(&dir, "case.yaml", "skipschema: true\n");
        let err = format!("{:#}", read(&tmp, &dir, None).unwrap_err());
        assert!(
            err.contains("case.yaml") && err.contains("skipschema"),
            "{err}"
        );
    }

    #[test]
    fn a_parent_being_deleted_is_a_finalizing_call() {
        let tmp = scratch("finalizing");
        write(
            &tmp,
            "parent.yaml",
            "kind: X\nmetadata: {name: a, deletionTimestamp: '2026-01-01T00:00:00Z'}\n",
        );
        let case = read(&tmp, &tmp, None).unwrap();
        assert_eq!(case.name, ".");
        assert!(case.input.finalizing);
    }
}
