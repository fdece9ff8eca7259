//! Kubernetes label selectors in their string form (`app=db,tier!=cache`,
//! `env in (prod,staging)`, `!canary`), as plugins pass them to
//! `cluster.list`.
//!
//! Matching is kube's (`kube::core::Selector` and `Expression`, the same
//! semantics as `ListParams::labels_from`); kube has no parser for the
//! string form, so the grammar of `k8s.io/apimachinery/pkg/labels` is
//! parsed here. Parsed once per call and matched against cached objects; a
//! malformed selector is an `invalid` error for the plugin, never a silent
//! "match all".

use std::collections::{BTreeMap, BTreeSet};

use kube::core::{Expression, SelectorExt};

/// A parsed label selector; all its expressions must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector(kube::core::Selector);

/// Why a selector's text is not a selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unbalanced '{paren}' in selector {text:?}")]
    Unbalanced { paren: char, text: String },
    #[error("invalid label key {key:?} in {part:?}")]
    InvalidKey { key: String, part: String },
    #[error("expected '(' after operator in {0:?}")]
    NoOpenParen(String),
    #[error("expected ')' at the end of {0:?}")]
    NoCloseParen(String),
    #[error("unknown operator {operator:?} in {part:?}")]
    UnknownOperator { operator: String, part: String },
}

impl Selector {
    /// The selector that matches every object.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Parses the string form. The error says which part is wrong.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let mut expressions = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if !part.is_empty() {
                expressions.push(parse_expression(part)?);
            }
        }
        Ok(Selector(expressions.into_iter().collect()))
    }

    /// Whether it matches every object.
    pub fn selects_all(&self) -> bool {
        self.0.selects_all()
    }

    /// Matches a label map.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.matches(labels)
    }

    /// Matches an object's `metadata.labels`, given as JSON (offline
    /// objects; cached ones are matched on their typed labels).
    pub fn matches_object(&self, object: &serde_json::Value) -> bool {
        if self.selects_all() {
            return true;
        }
        let labels = object
            .pointer("/metadata/labels")
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        self.matches(&labels)
    }

    /// Matches optional labels (an object without labels has none).
    pub fn matches_labels(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        match labels {
            Some(l) => self.matches(l),
            None => self.matches(&BTreeMap::new()),
        }
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, SelectorError> {
    let unbalanced = |paren| SelectorError::Unbalanced {
        paren,
        text: text.to_string(),
    };
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(unbalanced(')'));
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(unbalanced('('));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn check_key(key: &str, part: &str) -> Result<String, SelectorError> {
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(SelectorError::InvalidKey {
            key: key.to_string(),
            part: part.to_string(),
        })
    }
}

fn parse_expression(part: &str) -> Result<Expression, SelectorError> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(check_key(key.trim(), part)?));
    }
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Expression::NotEqual(
            check_key(k.trim(), part)?,
            v.trim().into(),
        ));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Expression::Equal(
            check_key(k.trim(), part)?,
            v.trim().into(),
        ));
    }
    match part.split_once(char::is_whitespace) {
        Some((key, rest)) => parse_set(key, rest.trim(), part),
        None => Ok(Expression::Exists(check_key(part, part)?)),
    }
}

/// `key in (a,b)` or `key notin (a,b)`.
fn parse_set(key: &str, rest: &str, part: &str) -> Result<Expression, SelectorError> {
    let (op, values) = rest
        .split_once('(')
        .ok_or_else(|| SelectorError::NoOpenParen(part.to_string()))?;
    let values = values
        .strip_suffix(')')
        .ok_or_else(|| SelectorError::NoCloseParen(part.to_string()))?;
    let values: BTreeSet<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    let key = check_key(key, part)?;
    match op.trim() {
        "in" => Ok(Expression::In(key, values)),
        "notin" => Ok(Expression::NotIn(key, values)),
        other => Err(SelectorError::UnknownOperator {
            operator: other.to_string(),
            part: part.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_set_based_requirements() {
        let l = labels(&[("app", "db"), ("env", "prod")]);
        let yes = [
            "",
            "app=db",
            "app==db",
            "app!=web",
            "env in (prod, staging)",
            "env notin (dev)",
            "app",
            "!canary",
            "app=db,env in (prod)",
        ];
        for s in yes {
            assert!(Selector::parse(s).unwrap().matches(&l), "{s} should match");
        }
        let no = [
            "app=web",
            "app!=db",
            "env in (dev)",
            "env notin (prod)",
            "canary",
            "!app",
        ];
        for s in no {
            assert!(
                !Selector::parse(s).unwrap().matches(&l),
                "{s} should not match"
            );
        }
        assert!(Selector::parse("").unwrap().selects_all());
        assert!(Selector::parse("!canary").unwrap().matches_labels(None));
    }

    #[test]
    fn malformed_selectors_say_why() {
        let err = |s: &str| Selector::parse(s).unwrap_err().to_string();
        assert!(err("env in (a").contains("unbalanced"));
        assert!(err("env within (a)").contains("unknown operator"));
        assert!(err("a b=c").contains("invalid label key"));
    }
}
