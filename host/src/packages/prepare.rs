//! From a plugin object's source to a loaded plugin, off the hot path, one
//! step at a time — resolve, fetch, verify, compile — each step's outcome
//! kept for the revision's conditions, so a bad artifact says which step
//! refused it and why, and never replaces what runs.
//!
//! Fetched artifacts are kept on disk by digest (beside the compile cache),
//! so a restarted host, or a registry gone away, does not stop a revision
//! that was fetched once from being prepared again; the bytes are checked
//! against their digest when read back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use oci_client::Reference;
use oci_client::secrets::RegistryAuth;

use super::def::{Def, tenant_refusal};
use super::types::Source;
use crate::engine::{Engine, Limits};
use crate::oci::registry::{self, Failure, RegistryError};
use crate::oci::{Artifact, ArtifactError, Registry, WasmConfig, auth, digest_of, signature};
use crate::plugin::Plugin;

/// A step that did not pass: the condition reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub message: String,
}

impl Refused {
    fn new(reason: &'static str, message: impl ToString) -> Refused {
        Refused {
            reason,
            message: message.to_string(),
        }
    }
}

impl From<RegistryError> for Refused {
    fn from(e: RegistryError) -> Refused {
        let reason = match &e {
            RegistryError::Reference { .. } => "InvalidReference",
            RegistryError::Registry { failure, .. } => match failure {
                Failure::NotFound => "NotFound",
                Failure::Unauthorized => "Unauthorized",
                Failure::Unreachable => "Unreachable",
                Failure::Other => "RegistryError",
            },
            RegistryError::Artifact {
                error: ArtifactError::TooLarge { .. },
                ..
            } => "TooLarge",
            RegistryError::Artifact { .. } => "NotAPlugin",
            RegistryError::DigestMismatch { .. } => "DigestMismatch",
        };
        Refused::new(reason, e)
    }
}

/// The outcome of preparing one revision, step by step (a step after a
/// refused one is not tried: `None`).
#[derive(Clone)]
pub struct Steps {
    pub fetched: Result<String, Refused>,
    pub verified: Option<Result<String, Refused>>,
    pub compiled: Option<Result<Arc<Plugin>, Refused>>,
}

impl Steps {
    pub fn plugin(&self) -> Option<&Arc<Plugin>> {
        self.compiled.as_ref()?.as_ref().ok()
    }
}

/// Resolves, fetches, verifies and loads plugin artifacts.
/// Prepared revisions by (slot key, digest): the generation prepared for
/// and the steps' outcome.
type Prepared = HashMap<(String, String), (Option<i64>, Steps)>;

pub struct Preparer {
    engine: Engine,
    registry: Registry,
    client: kube::Client,
    artifacts: Option<PathBuf>,
    /// Prepared revisions by (slot key, digest), with the object
    /// generation they were prepared for (a new spec, a new grant:
    /// prepared again).
    prepared: Mutex<Prepared>,
}

impl Preparer {
    pub fn new(
        engine: Engine,
        registry: Registry,
        client: kube::Client,
        artifacts: Option<PathBuf>,
    ) -> Preparer {
        Preparer {
            engine,
            registry,
            client,
            artifacts,
            prepared: Mutex::default(),
        }
    }

    /// The registry credentials of `def` for `r`'s registry: the first pull
    /// secret that has some, else anonymous.
    async fn auth(&self, def: &Def, r: &Reference) -> Result<RegistryAuth, Refused> {
        for (ns, name) in &def.pull_secrets {
            let api: kube::Api<Secret> = kube::Api::namespaced(self.client.clone(), ns);
            let secret = api.get(name).await.map_err(|e| {
                Refused::new(
                    "PullSecret",
                    format!("pull secret {ns}/{name}: {}", crate::api::concise(e)),
                )
            })?;
            let Some(config) = secret
                .data
                .as_ref()
                .and_then(|d| d.get(".dockerconfigjson"))
            else {
                return Err(Refused::new(
                    "PullSecret",
                    format!(
                        "pull secret {ns}/{name} has no .dockerconfigjson (type kubernetes.io/dockerconfigjson)"
                    ),
                ));
            };
            let found = auth::for_registry(&config.0, r.registry())
                .map_err(|e| Refused::new("PullSecret", format!("pull secret {ns}/{name}: {e}")))?;
            if !matches!(found, RegistryAuth::Anonymous) {
                return Ok(found);
            }
        }
        Ok(RegistryAuth::Anonymous)
    }

    /// What `source` names now: the reference and the digest it resolves
    /// to (the pinned one checked).
    pub async fn resolve(
        &self,
        def: &Def,
        source: &Source,
    ) -> Result<(Reference, String), Refused> {
        let r = registry::reference(&source.image)?;
        let auth = self.auth(def, &r).await?;
        let digest = self.registry.resolve(&r, &auth).await?;
        if let Some(pinned) = &source.digest
            && *pinned != digest
        {
            return Err(Refused::new(
                "DigestMismatch",
                format!(
                    "{} resolves to {digest}, not the pinned {pinned}",
                    source.image
                ),
            ));
        }
        Ok((r.clone_with_digest(digest.clone()), digest))
    }

    /// The steps of preparing `r` (by digest) for `def`, from memory when
    /// this generation of the object prepared it already.
    pub async fn prepare(&self, def: &Def, r: &Reference, digest: &str) -> Steps {
        let key = (def.key.clone(), digest.to_string());
        if let Some((generation, steps)) = self.lock().get(&key)
            && *generation == def.generation
            && steps.compiled.is_some()
        {
            return steps.clone();
        }
        let steps = self.run_steps(def, r, digest).await;
        self.lock().insert(key, (def.generation, steps.clone()));
        steps
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Prepared> {
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets what was prepared for a slot (its object is gone).
    pub fn forget(&self, key: &str) {
        self.lock().retain(|(k, _), _| k != key);
    }

    async fn run_steps(&self, def: &Def, r: &Reference, digest: &str) -> Steps {
        let fetched = self.fetch(def, r, digest).await;
        let artifact = match fetched {
            Ok(a) => a,
            Err(e) => {
                return Steps {
                    fetched: Err(e),
                    verified: None,
                    compiled: None,
                };
            }
        };
        let fetched = Ok(format!("{} bytes, {}", artifact.bytes.len(), r.whole()));
        let verified = self.verify(def, r, digest).await;
        if verified.is_err() {
            return Steps {
                fetched,
                verified: Some(verified),
                compiled: None,
            };
        }
        let compiled = self.load(def, artifact.bytes).await;
        Steps {
            fetched,
            verified: Some(verified),
            compiled: Some(compiled),
        }
    }

    /// The artifact, from the disk cache (checked) or the registry.
    async fn fetch(&self, def: &Def, r: &Reference, digest: &str) -> Result<Artifact, Refused> {
        if let Some(a) = self.cached(digest) {
            return Ok(a);
        }
        let auth = self.auth(def, r).await?;
        let artifact = self.registry.pull(r, &auth).await?;
        self.keep(&artifact);
        Ok(artifact)
    }

    fn paths(&self, digest: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = self.artifacts.as_ref()?;
        let hex = digest.strip_prefix("sha256:")?;
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some((
            dir.join(format!("{hex}.wasm")),
            dir.join(format!("{hex}.json")),
        ))
    }

    /// A kept artifact whose bytes still match the digest its config
    /// recorded; anything else is fetched again.
    fn cached(&self, digest: &str) -> Option<Artifact> {
        let (wasm, json) = self.paths(digest)?;
        let config: WasmConfig = serde_json::from_slice(&std::fs::read(json).ok()?).ok()?;
        let bytes = std::fs::read(wasm).ok()?;
        let layer = config.layer_digests.first()?;
        (digest_of(&bytes) == *layer).then(|| Artifact {
            digest: digest.to_string(),
            config,
            bytes,
        })
    }

    fn keep(&self, a: &Artifact) {
        let Some((wasm, json)) = self.paths(&a.digest) else {
            return;
        };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(wasm.parent().unwrap_or(&wasm))?;
            let tmp = wasm.with_extension("tmp");
            std::fs::write(&tmp, &a.bytes)?;
            std::fs::rename(&tmp, &wasm)?;
            std::fs::write(&json, serde_json::to_vec(&a.config).unwrap_or_default())
        };
        if let Err(e) = write() {
            tracing::warn!(digest = %a.digest, error = %e, "could not keep the artifact on disk; it will be fetched again after a restart");
        }
    }

    async fn verify(&self, def: &Def, r: &Reference, digest: &str) -> Result<String, Refused> {
        let Some(key) = &def.verify else {
            return Ok("no verification asked for".into());
        };
        let auth = self.auth(def, r).await?;
        signature::verify(&self.registry, r, digest, &auth, key)
            .await
            .map(|()| "a cosign signature verifies with the public key".into())
            .map_err(|e| {
                let reason = match e {
                    signature::VerifyError::Key => "InvalidKey",
                    signature::VerifyError::NoSignature(_) => "NoSignature",
                    signature::VerifyError::Invalid { .. } => "InvalidSignature",
                };
                Refused::new(reason, e)
            })
    }

    /// Compiles, describes and checks the component against its grant
    /// (and a tenant's confinement), on a blocking thread.
    async fn load(&self, def: &Def, bytes: Vec<u8>) -> Result<Arc<Plugin>, Refused> {
        let engine = self.engine.clone();
        let grant = def.grant.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            Plugin::load_granted_by(&engine, &bytes, Limits::default(), grant)
        })
        .await
        .map_err(|e| Refused::new("LoadFailed", e))?;
        let plugin = loaded.map_err(|e| {
            let reason = match crate::runtime::RejectionKind::of_load(&e) {
                crate::runtime::RejectionKind::NotAComponent => "NotAComponent",
                crate::runtime::RejectionKind::Contract => "WrongWorld",
                crate::runtime::RejectionKind::Describe => "DescribeFailed",
                crate::runtime::RejectionKind::Registration => "InvalidRegistration",
                crate::runtime::RejectionKind::NotGranted => "NotGranted",
                _ => "LoadFailed",
            };
            Refused::new(reason, e)
        })?;
        if let Some(policy) = &def.policy
            && let Some(why) = tenant_refusal(plugin.registration(), policy)
        {
            return Err(Refused::new("NotAllowedForTenants", why));
        }
        Ok(Arc::new(plugin))
    }
}
