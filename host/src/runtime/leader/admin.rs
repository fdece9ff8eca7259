//! The admin endpoint (`operon plugins`) on a replica with leader election.

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Gate;
use crate::server::{Admin, AdminError, AdminRequest};

/// Answers as the supervisor does, says which replica answered and whether
/// it leads, and refuses a rollback on a standby ([`AdminError::Standby`]).
/// A standby follows the plugin directory like the leader (so it is warm
/// with the same builds); a rollback is the leader's decision, and one made
/// on a standby would be a revision no replica writes with until a
/// failover, then a surprise.
#[derive(Debug)]
pub struct ReplicaAdmin<A> {
    /// What answers on the leader: the supervisor's handle.
    pub inner: A,
    pub identity: String,
    /// `namespace/name` of the Lease.
    pub lease: String,
    /// Open while this replica leads.
    pub leading: Gate,
    pub holder: watch::Receiver<Option<String>>,
}

impl<A: Admin> Admin for ReplicaAdmin<A> {
    fn ask(&self, request: AdminRequest) -> BoxFuture<'_, Result<Value, AdminError>> {
        Box::pin(async move {
            let leading = self.leading.is_open();
            let holder = self.holder.borrow().clone();
            if matches!(request, AdminRequest::Rollback { .. }) && !leading {
                return Err(AdminError::Standby {
                    identity: self.identity.clone(),
                    lease: self.lease.clone(),
                    leader: holder,
                });
            }
            let mut answer = self.inner.ask(request).await?;
            if let Some(fields) = answer.as_object_mut() {
                let replica = json!({"identity": self.identity, "lease": self.lease,
                    "leader": leading, "holder": holder});
                fields.insert("replica".to_string(), replica);
            }
            Ok(answer)
        })
    }
}
