//! The admin protocol of `operon plugins`: what a client may ask a running
//! host, the errors the host may answer, and how both travel over HTTP.
//!
//! The protocol is the server's, not the supervisor's that answers it: the
//! runtime implements [`Admin`] and depends on `server`, never the reverse,
//! so each side can be tested without the other. The supervisor says what
//! went wrong as an [`AdminError`]; [`AdminError::status`] alone decides the
//! HTTP status it becomes, and [`AdminRequest::route`] is the one table of
//! routes, used by the server to parse a request and by the CLI to build it.
//!
//! Routes (answers are JSON; an error is `{"error": "<message>"}`):
//! - `GET /plugins`: every plugin, its revisions, candidate, rejections;
//! - `GET /plugins/<name>`: one plugin;
//! - `POST /plugins/<name>/rollback[/<revision>]`: back to the previous (or
//!   the given) kept revision;
//! - `POST /plugins/<name>/record/<count>`: record the next `count`
//!   reconciles (`operon plugins record`), or say how far the recording
//!   asked already is; `GET /plugins/<name>/record`: how far, and the
//!   records; `DELETE /plugins/<name>/record`: stop, forget the records.

use futures::future::BoxFuture;
use hyper::{Method, StatusCode};
use serde_json::Value;

/// Where the admin routes start.
pub const PREFIX: &str = "/plugins";

/// What `operon plugins` asks the running host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    /// Every plugin.
    List,
    /// One plugin, by name.
    Get(String),
    /// Back to revision `to`, or to the one before the active revision.
    Rollback { name: String, to: Option<u32> },
    /// Record the next `count` reconciles of a plugin (if no recording
    /// was asked already); answers how far it is.
    Record { name: String, count: usize },
    /// How far a plugin's recording is, and what it recorded.
    Recorded(String),
    /// Stop a plugin's recording and forget its records.
    StopRecording(String),
}

/// Why a request line is not an admin request: the status and the plain
/// text body it is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: &'static str,
}

/// A plugin's name as one path segment: the slots of plugin objects are
/// named `crp/<name>` and `rp/<namespace>/<name>`, so `/` (and `%`) are
/// percent-encoded and the segment stays one.
const IN_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b'/')
    .add(b'%')
    .add(b' ')
    .add(b'?')
    .add(b'#');

fn segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, IN_SEGMENT).to_string()
}

impl AdminRequest {
    /// The method and path that carry this request.
    pub fn route(&self) -> (Method, String) {
        let name = |n: &str| segment(n);
        match self {
            AdminRequest::List => (Method::GET, PREFIX.to_string()),
            AdminRequest::Get(n) => (Method::GET, format!("{PREFIX}/{}", name(n))),
            AdminRequest::Rollback { name: n, to: None } => {
                (Method::POST, format!("{PREFIX}/{}/rollback", name(n)))
            }
            AdminRequest::Rollback {
                name: n,
                to: Some(r),
            } => (Method::POST, format!("{PREFIX}/{}/rollback/{r}", name(n))),
            AdminRequest::Record { name: n, count } => {
                (Method::POST, format!("{PREFIX}/{}/record/{count}", name(n)))
            }
            AdminRequest::Recorded(n) => (Method::GET, format!("{PREFIX}/{}/record", name(n))),
            AdminRequest::StopRecording(n) => {
                (Method::DELETE, format!("{PREFIX}/{}/record", name(n)))
            }
        }
    }

    /// The request a method and path (under [`PREFIX`]) carry, or why they
    /// carry none: 405 for another method on a plugin or the list, 400 for
    /// a revision or count that is not a number, 404 for any other path.
    pub fn parse(method: &Method, path: &str) -> Result<AdminRequest, Refusal> {
        let refuse = |status, message| Err(Refusal { status, message });
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return refuse(StatusCode::NOT_FOUND, "not found");
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            return refuse(StatusCode::NOT_FOUND, "not found");
        }
        let decoded: Vec<String> = rest
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| {
                percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
        match (method, parts.as_slice()) {
            (&Method::GET, []) => Ok(AdminRequest::List),
            (&Method::GET, [name]) => Ok(AdminRequest::Get(name.to_string())),
            (&Method::POST, [name, "rollback"]) => Ok(AdminRequest::Rollback {
                name: name.to_string(),
                to: None,
            }),
            (&Method::POST, [name, "rollback", revision]) => match revision.parse() {
                Ok(n) => Ok(AdminRequest::Rollback {
                    name: name.to_string(),
                    to: Some(n),
                }),
                Err(_) => refuse(StatusCode::BAD_REQUEST, "a revision is a number"),
            },
            (&Method::POST, [name, "record", count]) => match count.parse() {
                Ok(count) => Ok(AdminRequest::Record {
                    name: name.to_string(),
                    count,
                }),
                Err(_) => refuse(StatusCode::BAD_REQUEST, "a count is a number"),
            },
            (&Method::GET, [name, "record"]) => Ok(AdminRequest::Recorded(name.to_string())),
            (&Method::DELETE, [name, "record"]) => {
                Ok(AdminRequest::StopRecording(name.to_string()))
            }
            (_, [] | [_]) => refuse(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            _ => refuse(StatusCode::NOT_FOUND, "not found"),
        }
    }
}

/// Why the host did not do what an admin request asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No loaded plugin has this name.
    #[error("no plugin named {name} is loaded")]
    NoSuchPlugin { name: String },
    /// A rollback named a revision the plugin does not keep.
    #[error("plugin {name} has no revision {revision} kept (kept: {})", numbers(.kept))]
    NoSuchRevision {
        name: String,
        revision: u32,
        kept: Vec<u32>,
    },
    /// A rollback without a revision, and only one revision is kept.
    #[error("plugin {name} has no earlier revision to roll back to")]
    NoEarlierRevision { name: String },
    /// A rollback to the revision that runs already.
    #[error("revision {revision} of {name} is already active")]
    AlreadyActive { name: String, revision: u32 },
    /// The host stops: it no longer takes requests.
    #[error("the host is shutting down")]
    ShuttingDown,
    /// The target revision could not be started (its controller, its CRDs).
    #[error("rollback of {name} failed: {cause:#}")]
    RollbackFailed { name: String, cause: anyhow::Error },
    /// A change asked of a standby replica (`--leader-elect`): only the
    /// leader's revisions take effect, so a standby refuses rather than
    /// diverge from it silently.
    #[error(
        "this replica ({identity}) is a standby of Lease {lease}: roll back on the leader{}",
        leader.as_deref().map(|l| format!(" ({l})")).unwrap_or_default()
    )]
    Standby {
        identity: String,
        lease: String,
        leader: Option<String>,
    },
}

fn numbers(kept: &[u32]) -> String {
    let kept: Vec<String> = kept.iter().map(u32::to_string).collect();
    kept.join(", ")
}

impl AdminError {
    /// The HTTP status of this answer: 404 for what does not exist, 409 for
    /// a rollback that conflicts with the plugin's state or asked of a
    /// standby, 503 while the host
    /// stops, 500 when the rollback itself failed.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::NoSuchPlugin { .. } | AdminError::NoSuchRevision { .. } => {
                StatusCode::NOT_FOUND
            }
            AdminError::NoEarlierRevision { .. }
            | AdminError::AlreadyActive { .. }
            | AdminError::Standby { .. } => StatusCode::CONFLICT,
            AdminError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::RollbackFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What answers admin requests: the runtime's supervisor, through its
/// handle. A reply is the JSON body of a 200.
pub trait Admin: std::fmt::Debug + Send + Sync + 'static {
    fn ask(&self, request: AdminRequest) -> BoxFuture<'_, Result<Value, AdminError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip() {
        let requests = [
            AdminRequest::List,
            AdminRequest::Get("pg".into()),
            AdminRequest::Rollback {
                name: "pg".into(),
                to: None,
            },
            AdminRequest::Rollback {
                name: "pg".into(),
                to: Some(3),
            },
            // Plugin objects' slots.
            AdminRequest::Get("crp/memcached".into()),
            AdminRequest::Rollback {
                name: "rp/team-a/reads".into(),
                to: Some(2),
            },
            AdminRequest::Record {
                name: "pg".into(),
                count: 20,
            },
            AdminRequest::Recorded("crp/memcached".into()),
            AdminRequest::StopRecording("pg".into()),
        ];
        for request in requests {
            let (method, path) = request.route();
            assert_eq!(AdminRequest::parse(&method, &path), Ok(request));
        }
    }

    #[test]
    fn refuses_other_methods_and_paths() {
        let status = |method: Method, path: &str| {
            AdminRequest::parse(&method, path).map_err(|r| (r.status.as_u16(), r.message))
        };
        assert_eq!(status(Method::GET, "/plugins/"), Ok(AdminRequest::List));
        assert_eq!(
            status(Method::POST, "/plugins"),
            Err((405, "method not allowed"))
        );
        assert_eq!(
            status(Method::DELETE, "/plugins/pg"),
            Err((405, "method not allowed"))
        );
        assert_eq!(
            status(Method::GET, "/plugins/pg/rollback"),
            Err((404, "not found"))
        );
        assert_eq!(
            status(Method::POST, "/plugins/pg/rollback/x"),
            Err((400, "a revision is a number"))
        );
        assert_eq!(
            status(Method::POST, "/plugins/pg/rollback/1/2"),
            Err((404, "not found"))
        );
        assert_eq!(status(Method::GET, "/pluginsx"), Err((404, "not found")));
        assert_eq!(
            status(Method::POST, "/plugins/pg/record/many"),
            Err((400, "a count is a number"))
        );
        assert_eq!(
            status(Method::PUT, "/plugins/pg/record"),
            Err((404, "not found"))
        );
    }

    #[test]
    fn errors_map_to_statuses_and_say_why() {
        let cases = [
            (
                AdminError::NoSuchPlugin { name: "pg".into() },
                404,
                "no plugin named pg is loaded",
            ),
            (
                AdminError::NoSuchRevision {
                    name: "pg".into(),
                    revision: 9,
                    kept: vec![1, 2],
                },
                404,
                "plugin pg has no revision 9 kept (kept: 1, 2)",
            ),
            (
                AdminError::NoEarlierRevision { name: "pg".into() },
                409,
                "plugin pg has no earlier revision to roll back to",
            ),
            (
                AdminError::AlreadyActive {
                    name: "pg".into(),
                    revision: 2,
                },
                409,
                "revision 2 of pg is already active",
            ),
            (AdminError::ShuttingDown, 503, "the host is shutting down"),
            (
                AdminError::Standby {
                    identity: "operon-b".into(),
                    lease: "operon-system/operon".into(),
                    leader: Some("operon-a".into()),
                },
                409,
                "this replica (operon-b) is a standby of Lease operon-system/operon: roll back on the leader (operon-a)",
            ),
            (
                AdminError::RollbackFailed {
                    name: "pg".into(),
                    cause: anyhow::anyhow!("no CRD").context("starting revision 1"),
                },
                500,
                "rollback of pg failed: starting revision 1: no CRD",
            ),
        ];
        for (error, status, message) in cases {
            assert_eq!(
                (error.status().as_u16(), error.to_string()),
                (status, message.into())
            );
        }
    }
}
