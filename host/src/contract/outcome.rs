//! A plugin's answer, decoded: every JSON text parsed once, here, so that the
//! rest of the host (and the CLI) works with values, and a malformed answer
//! is refused whole with a message naming the offending part.

use serde::Serialize;
use serde_json::Value;

use super::bindings::operon::reconciler::types as wit;
use super::{Event, EventType, ObjectRef, PatchType};

/// What a reconcile asked for, with every JSON text parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub children: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    pub events: Vec<DecodedEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requeue_after_ms: Option<u64>,
    pub finalized: bool,
    pub patches: Vec<DecodedPatch>,
    /// Sizes of the JSON texts as the plugin sent them (`None` for an
    /// outcome built in the host: [`Outcome::sizes`] measures it then).
    #[serde(skip)]
    pub sizes: Option<Sizes>,
}

/// How large an answer is, in bytes of JSON, for the output limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Each child's, in order.
    pub children: Vec<usize>,
    pub status: usize,
    /// Children, status, patches and events together.
    pub total: usize,
}

/// An event about the parent, as Kubernetes spells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodedEvent {
    #[serde(rename = "type")]
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

impl From<Event> for DecodedEvent {
    fn from(e: Event) -> DecodedEvent {
        DecodedEvent {
            type_: e.type_,
            reason: e.reason,
            message: e.message,
        }
    }
}

/// The object a patch is for, as Kubernetes spells a reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl From<ObjectRef> for Target {
    fn from(r: ObjectRef) -> Target {
        Target {
            api_version: r.api_version,
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
        }
    }
}

/// A patch to a non-owned object, body parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecodedPatch {
    pub target: Target,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    pub patch_type: PatchType,
    pub body: Value,
}

/// An error the plugin returned on purpose (not a trap).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// Transient: retry with backoff.
    #[error("retryable error: {0}")]
    Retryable(String),
    /// The parent cannot be reconciled as it is: wait for it to change.
    #[error("permanent error: {0}")]
    Permanent(String),
}

impl From<wit::Error> for PluginError {
    fn from(e: wit::Error) -> PluginError {
        match e {
            wit::Error::Retryable(m) => PluginError::Retryable(m),
            wit::Error::Permanent(m) => PluginError::Permanent(m),
        }
    }
}

/// Why a plugin's answer cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is not valid JSON: {error}")]
    NotJson { what: String, error: String },
    #[error("must be a JSON object")]
    NotObject,
    #[error("has no apiVersion")]
    NoApiVersion,
    #[error("has no kind")]
    NoKind,
    /// The kind that has no name.
    #[error("{0} has no metadata.name")]
    NoName(String),
    #[error("status must be a JSON object")]
    StatusNotObject,
    #[error("child #{index}: {error}")]
    Child {
        index: usize,
        error: Box<DecodeError>,
    },
}

fn parse(what: impl Into<String>, text: &str) -> Result<Value, DecodeError> {
    serde_json::from_str(text).map_err(|e| DecodeError::NotJson {
        what: what.into(),
        error: e.to_string(),
    })
}

impl Outcome {
    /// Parses every JSON text of a response. Children and status must be
    /// JSON objects; a child must say its apiVersion, kind and name.
    pub fn decode(response: wit::Response) -> Result<Outcome, DecodeError> {
        let sizes = Sizes::of_response(&response);
        let children = response
            .children
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let child = parse(format!("child #{i}"), text)?;
                describe_child(&child).map_err(|error| DecodeError::Child {
                    index: i,
                    error: Box::new(error),
                })?;
                Ok(child)
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        let status = match &response.status {
            Some(text) => {
                let status = parse("status", text)?;
                if !status.is_object() {
                    return Err(DecodeError::StatusNotObject);
                }
                Some(status)
            }
            None => None,
        };
        let patches = response
            .patches
            .into_iter()
            .map(|p| {
                let body = parse(format!("patch of {}", p.target), &p.body)?;
                Ok(DecodedPatch {
                    target: p.target.into(),
                    subresource: p.subresource,
                    patch_type: p.patch_type,
                    body,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        Ok(Outcome {
            children,
            status,
            events: response
                .events
                .into_iter()
                .map(DecodedEvent::from)
                .collect(),
            requeue_after_ms: response.requeue_after_ms,
            finalized: response.finalized,
            patches,
            sizes: Some(sizes),
        })
    }

    /// The sizes of this answer: as sent, or measured now.
    pub fn sizes(&self) -> Sizes {
        if let Some(s) = &self.sizes {
            return s.clone();
        }
        let len = |v: &Value| serde_json::to_vec(v).map_or(0, |b| b.len());
        Sizes::new(
            self.children.iter().map(len).collect(),
            self.status.as_ref().map_or(0, len),
            self.patches.iter().map(|p| len(&p.body)),
            self.events.iter().map(|e| e.reason.len() + e.message.len()),
        )
    }
}

impl Sizes {
    fn of_response(r: &wit::Response) -> Sizes {
        Sizes::new(
            r.children.iter().map(String::len).collect(),
            r.status.as_ref().map_or(0, String::len),
            r.patches.iter().map(|p| p.body.len()),
            r.events.iter().map(|e| e.reason.len() + e.message.len()),
        )
    }

    fn new(
        children: Vec<usize>,
        status: usize,
        patches: impl Iterator<Item = usize>,
        events: impl Iterator<Item = usize>,
    ) -> Sizes {
        Sizes {
            total: children.iter().sum::<usize>()
                + status
                + patches.sum::<usize>()
                + events.sum::<usize>(),
            children,
            status,
        }
    }
}

/// `Kind namespace/name` of a child, or what it lacks.
pub fn describe_child(child: &Value) -> Result<String, DecodeError> {
    if !child.is_object() {
        return Err(DecodeError::NotObject);
    }
    let get = |p: &str| {
        child
            .pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    get("/apiVersion").ok_or(DecodeError::NoApiVersion)?;
    let kind = get("/kind").ok_or(DecodeError::NoKind)?;
    let name = get("/metadata/name").ok_or_else(|| DecodeError::NoName(kind.to_string()))?;
    Ok(match get("/metadata/namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(children: &[&str]) -> wit::Response {
        wit::Response {
            children: children.iter().map(|s| s.to_string()).collect(),
            status: Some(r#"{"ready":true}"#.into()),
            events: vec![],
            requeue_after_ms: None,
            finalized: false,
            patches: vec![],
        }
    }

    #[test]
    fn decodes_children_and_status() {
        let ok = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}"#;
        let out = Outcome::decode(response(&[ok])).unwrap();
        assert_eq!(out.children[0]["kind"], "Service");
        assert_eq!(out.status.unwrap()["ready"], true);
    }

    #[test]
    fn names_the_malformed_child() {
        let ok = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}"#;
        let err = Outcome::decode(response(&[ok, "{not json"]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("child #1 is not valid JSON"), "{err}");
        let err = Outcome::decode(response(&[r#"{"apiVersion":"v1","kind":"Service"}"#]));
        assert_eq!(
            err.unwrap_err().to_string(),
            "child #0: Service has no metadata.name"
        );
    }
}
