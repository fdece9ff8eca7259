//! A registry, through `oci-client`: push an artifact, resolve a tag to
//! its digest, pull an artifact by digest with every check made before the
//! bytes are trusted.
//!
//! Pulling is careful because a registry is not the host operator: the
//! manifest is read first and the layer's declared size checked against
//! the limit before anything is downloaded; the download is capped anyway
//! (a registry may lie about sizes); the layer's digest is verified as it
//! streams and again against the config's `layerDigests`; the config must
//! be a Wasm config of operon's world. Plain HTTP is used only for the
//! registries named in [`RegistryOptions::plain_http`].

use futures::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{ArtifactError, CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, WasmConfig, digest_of};

/// How the host talks to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) reached over plain HTTP; every other one
    /// over HTTPS.
    pub plain_http: Vec<String>,
    /// Largest component accepted, in bytes.
    pub max_bytes: u64,
    /// Per-request timeout.
    pub timeout: std::time::Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http: Vec::new(),
            max_bytes: 64 << 20,
            timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// The most a config may be: it is a few hundred bytes of JSON.
const MAX_CONFIG_BYTES: i64 = 64 << 10;

/// A pulled, checked artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The manifest's digest: the artifact's identity.
    pub digest: String,
    pub config: WasmConfig,
    /// The component.
    pub bytes: Vec<u8>,
}

/// Why a registry operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference:?} is not an OCI reference: {message}")]
    Reference { reference: String, message: String },
    /// The registry's own answer (not found, unauthorized, ...) or why it
    /// could not be reached.
    #[error("{op} {reference}: {message}")]
    Registry {
        op: &'static str,
        reference: String,
        failure: Failure,
        message: String,
    },
    #[error("{reference}: {error}")]
    Artifact {
        reference: String,
        error: ArtifactError,
    },
    #[error("{reference}: the content's digest is {found}, not {expected}")]
    DigestMismatch {
        reference: String,
        expected: String,
        found: String,
    },
}

/// What kind of registry failure: what a user does next differs (fix the
/// name, the credentials, or wait for the registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No such repository, tag or blob.
    NotFound,
    /// The credentials were refused, or none were given where needed.
    Unauthorized,
    /// No answer: connection refused, timed out, TLS.
    Unreachable,
    /// Anything else the registry answered.
    Other,
}

impl Failure {
    fn of(e: &oci_client::errors::OciDistributionError) -> Failure {
        use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
        match e {
            E::ImageManifestNotFoundError(_) => Failure::NotFound,
            E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => Failure::Unauthorized,
            E::RequestError(_) => Failure::Unreachable,
            E::ServerError { code: 404, .. } => Failure::NotFound,
            E::ServerError {
                code: 401 | 403, ..
            } => Failure::Unauthorized,
            E::RegistryError { envelope, .. } => match envelope.errors.first().map(|e| &e.code) {
                Some(C::ManifestUnknown | C::NameUnknown | C::BlobUnknown | C::NotFound) => {
                    Failure::NotFound
                }
                Some(C::Unauthorized | C::Denied) => Failure::Unauthorized,
                _ => Failure::Other,
            },
            _ => Failure::Other,
        }
    }
}

/// Parses a reference (`registry/repo:tag`, `registry/repo@sha256:…`).
pub fn reference(text: &str) -> Result<Reference, RegistryError> {
    let text = text.strip_prefix("oci://").unwrap_or(text);
    text.parse()
        .map_err(|e: oci_client::ParseError| RegistryError::Reference {
            reference: text.to_string(),
            message: e.to_string(),
        })
}

/// A registry client.
///
/// One `oci_client::Client` per set of credentials: a `Client` keeps the
/// first credentials it is given for a registry and uses them for every
/// later request there, whatever credentials those requests carry. Shared,
/// one plugin's pull secret would serve another's pulls (a tenant could
/// fetch what only another tenant may), and corrected credentials would
/// never be tried.
pub struct Registry {
    clients: std::sync::Mutex<std::collections::HashMap<[u8; 32], Client>>,
    options: RegistryOptions,
}

impl Registry {
    pub fn new(options: RegistryOptions) -> Registry {
        crate::tls::install_provider();
        Registry {
            clients: Default::default(),
            options,
        }
    }

    fn client_config(&self) -> ClientConfig {
        ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.options.plain_http.clone()),
            read_timeout: Some(self.options.timeout),
            connect_timeout: Some(self.options.timeout),
            ..ClientConfig::default()
        }
    }

    /// The client for `auth` (for signatures too, which live beside the
    /// artifact).
    pub(crate) fn client(&self, auth: &RegistryAuth) -> Client {
        use sha2::Digest as _;
        let mut key = sha2::Sha256::new();
        match auth {
            RegistryAuth::Anonymous => key.update(b"anonymous"),
            RegistryAuth::Basic(user, password) => {
                key.update(b"basic\0");
                key.update(user.as_bytes());
                key.update(b"\0");
                key.update(password.as_bytes());
            }
            RegistryAuth::Bearer(token) => {
                key.update(b"bearer\0");
                key.update(token.as_bytes());
            }
        }
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(key.finalize().into())
            .or_insert_with(|| Client::new(self.client_config()))
            .clone()
    }

    fn failed(
        op: &'static str,
        r: &Reference,
        e: oci_client::errors::OciDistributionError,
    ) -> RegistryError {
        RegistryError::Registry {
            op,
            reference: r.whole(),
            failure: Failure::of(&e),
            message: crate::bounded::message(&e.to_string()).into_owned(),
        }
    }

    /// Pushes a component as a Wasm artifact; returns the manifest digest.
    pub async fn push(
        &self,
        r: &Reference,
        component: &[u8],
        config: &WasmConfig,
        auth: &RegistryAuth,
    ) -> Result<String, RegistryError> {
        let layer = ImageLayer::new(component.to_vec(), LAYER_MEDIA_TYPE.into(), None);
        let config = Config::new(
            serde_json::to_vec(config).unwrap_or_default(),
            CONFIG_MEDIA_TYPE.into(),
            None,
        );
        let manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        let manifest_digest = digest_of(&serde_json::to_vec(&manifest).unwrap_or_default());
        self.client(auth)
            .push(r, &[layer], config, auth, Some(manifest))
            .await
            .map_err(|e| Self::failed("pushing", r, e))?;
        // The registry names a manifest by the digest of the bytes it
        // stored; ask rather than assume they are ours.
        Ok(self.resolve(r, auth).await.unwrap_or(manifest_digest))
    }

    /// The digest a reference names: its own when it has one, else what
    /// its tag points to now.
    pub async fn resolve(
        &self,
        r: &Reference,
        auth: &RegistryAuth,
    ) -> Result<String, RegistryError> {
        if let Some(d) = r.digest() {
            return Ok(d.to_string());
        }
        self.client(auth)
            .fetch_manifest_digest(r, auth)
            .await
            .map_err(|e| Self::failed("resolving", r, e))
    }

    /// Pulls the artifact `r` names (by digest, for a reproducible fetch),
    /// checking it as the module docs say.
    pub async fn pull(
        &self,
        r: &Reference,
        auth: &RegistryAuth,
    ) -> Result<Artifact, RegistryError> {
        let invalid = |error| RegistryError::Artifact {
            reference: r.whole(),
            error,
        };
        let client = self.client(auth);
        let (manifest, digest) = client
            .pull_manifest(r, auth)
            .await
            .map_err(|e| Self::failed("pulling the manifest of", r, e))?;
        if let Some(expected) = r.digest()
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                reference: r.whole(),
                expected: expected.into(),
                found: digest,
            });
        }
        let OciManifest::Image(manifest) = manifest else {
            return Err(invalid(ArtifactError::ConfigMediaType(
                "an image index".into(),
            )));
        };
        let layer = check_manifest(&manifest, self.options.max_bytes).map_err(invalid)?;
        let config = self
            .blob(&client, r, &manifest.config, MAX_CONFIG_BYTES as u64)
            .await?;
        let config: WasmConfig = serde_json::from_slice(&config)
            .map_err(|e| invalid(ArtifactError::Config(e.to_string())))?;
        config.check().map_err(invalid)?;
        let bytes = self.blob(&client, r, layer, self.options.max_bytes).await?;
        let found = digest_of(&bytes);
        let declared = config.layer_digests.iter().all(|d| *d == found);
        if found != layer.digest || !declared {
            return Err(RegistryError::DigestMismatch {
                reference: r.whole(),
                expected: layer.digest.clone(),
                found,
            });
        }
        Ok(Artifact {
            digest,
            config,
            bytes,
        })
    }

    /// A blob, at most `max` bytes whatever its descriptor says.
    async fn blob(
        &self,
        client: &Client,
        r: &Reference,
        d: &OciDescriptor,
        max: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut stream = client
            .pull_blob_stream(r, d)
            .await
            .map_err(|e| Self::failed("pulling a blob of", r, e))?;
        let mut out = Vec::with_capacity(d.size.clamp(0, max as i64) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Registry {
                op: "pulling a blob of",
                reference: r.whole(),
                failure: Failure::Unreachable,
                message: crate::bounded::message(&e.to_string()).into_owned(),
            })?;
            if (out.len() + chunk.len()) as u64 > max {
                return Err(RegistryError::Artifact {
                    reference: r.whole(),
                    error: ArtifactError::TooLarge {
                        size: (out.len() + chunk.len()) as u64,
                        limit: max,
                    },
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// The one component layer of a manifest, refused before any download
/// when the manifest is not a Wasm artifact or the layer is too large.
fn check_manifest(m: &OciImageManifest, max: u64) -> Result<&OciDescriptor, ArtifactError> {
    if m.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(ArtifactError::ConfigMediaType(m.config.media_type.clone()));
    }
    let [layer] = m.layers.as_slice() else {
        return Err(ArtifactError::Layers(m.layers.len()));
    };
    if layer.media_type != LAYER_MEDIA_TYPE {
        return Err(ArtifactError::LayerMediaType(layer.media_type.clone()));
    }
    if layer.size < 0 || layer.size as u64 > max {
        return Err(ArtifactError::TooLarge {
            size: layer.size.max(0) as u64,
            limit: max,
        });
    }
    if m.config.size > MAX_CONFIG_BYTES {
        return Err(ArtifactError::Config(format!(
            "{} bytes of config, over {MAX_CONFIG_BYTES}",
            m.config.size
        )));
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(config_type: &str, layers: &[(&str, i64)]) -> OciImageManifest {
        let d = |media_type: &str, size| OciDescriptor {
            media_type: media_type.into(),
            digest: "sha256:00".into(),
            size,
            urls: None,
            annotations: None,
            artifact_type: None,
        };
        OciImageManifest {
            schema_version: 2,
            media_type: None,
            config: d(config_type, 100),
            layers: layers.iter().map(|(t, s)| d(t, *s)).collect(),
            subject: None,
            artifact_type: None,
            annotations: None,
        }
    }

    #[test]
    fn manifests_are_checked_before_any_download() {
        let ok = manifest(CONFIG_MEDIA_TYPE, &[(LAYER_MEDIA_TYPE, 1000)]);
        check_manifest(&ok, 2000).unwrap();
        assert_eq!(
            check_manifest(&ok, 500).unwrap_err(),
            ArtifactError::TooLarge {
                size: 1000,
                limit: 500
            }
        );
        let image = manifest(
            "application/vnd.oci.image.config.v1+json",
            &[(LAYER_MEDIA_TYPE, 1)],
        );
        assert!(matches!(
            check_manifest(&image, 2000),
            Err(ArtifactError::ConfigMediaType(_))
        ));
        let two = manifest(
            CONFIG_MEDIA_TYPE,
            &[(LAYER_MEDIA_TYPE, 1), (LAYER_MEDIA_TYPE, 1)],
        );
        assert_eq!(
            check_manifest(&two, 2000).unwrap_err(),
            ArtifactError::Layers(2)
        );
        let tar = manifest(
            CONFIG_MEDIA_TYPE,
            &[("application/vnd.oci.image.layer.v1.tar", 1)],
        );
        assert!(matches!(
            check_manifest(&tar, 2000),
            Err(ArtifactError::LayerMediaType(_))
        ));
    }

    #[test]
    fn references_parse_with_or_without_the_scheme() {
        let r = reference("oci://127.0.0.1:5000/plugins/memcached:v1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "plugins/memcached");
        assert_eq!(r.tag(), Some("v1"));
        assert!(reference("").is_err());
        assert!(reference("registry.example/repo:a b").is_err());
    }
}
