//! Plugins as Wasm OCI artifacts: what `operon push` stores in a registry
//! and the host fetches, in the CNCF TAG Runtime layout (the one wkg, oras
//! and the Wasm runtimes' shims read).
//!
//! An artifact is an OCI image manifest with
//! - a config of media type [`CONFIG_MEDIA_TYPE`]: [`WasmConfig`], which
//!   says `architecture: wasm`, `os: wasip2`, the layer digests and the
//!   component's imports and exports (so a reader can tell what it is
//!   without running it);
//! - exactly one layer of media type [`LAYER_MEDIA_TYPE`]: the component's
//!   bytes.
//!
//! Registry I/O is `oci-client`'s ([`registry`]); what the host refuses
//! before compiling anything (a config of another media type, a layer over
//! the size limit, a digest that does not match, exports of another world)
//! is decided in [`registry::Registry::pull`] and [`WasmConfig::check`].

pub mod auth;
pub mod registry;
pub mod signature;

use serde::{Deserialize, Serialize};

pub use registry::{Artifact, Registry, RegistryOptions, reference};

/// The config media type of a Wasm OCI artifact.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The layer media type: a Wasm component (or module).
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";

/// The artifact's config (TAG Runtime's `application/vnd.wasm.config.v0+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub layer_digests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentConfig>,
}

/// What the component imports and exports, and the world it targets.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ComponentConfig {
    #[serde(default)]
    pub exports: Vec<String>,
    #[serde(default)]
    pub imports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Why an artifact is not one the host runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("the config's media type is {0}, not {CONFIG_MEDIA_TYPE}: not a Wasm artifact")]
    ConfigMediaType(String),
    #[error("the artifact has {0} layers; a plugin is exactly one layer of {LAYER_MEDIA_TYPE}")]
    Layers(usize),
    #[error("the layer's media type is {0}, not {LAYER_MEDIA_TYPE}")]
    LayerMediaType(String),
    #[error("the config says architecture {architecture:?} and os {os:?}, not wasm and wasip2")]
    Platform { architecture: String, os: String },
    #[error("the config is not valid JSON: {0}")]
    Config(String),
    #[error(
        "the component exports {found}, not the reconciler world's {}",
        crate::contract::REQUIRED_EXPORTS.join(", ")
    )]
    Exports { found: String },
    #[error(
        "the layer is {size} bytes, over the limit of {limit} bytes (raise --max-artifact-mib)"
    )]
    TooLarge { size: u64, limit: u64 },
}

impl WasmConfig {
    /// The config for a component of `digest` with these imports and
    /// exports (as `operon inspect` lists them).
    pub fn for_component(digest: &str, imports: Vec<String>, exports: Vec<String>) -> WasmConfig {
        WasmConfig {
            created: Some(k8s_openapi::jiff::Timestamp::now().to_string()),
            author: None,
            architecture: "wasm".into(),
            os: "wasip2".into(),
            layer_digests: vec![digest.to_string()],
            component: Some(ComponentConfig {
                exports,
                imports,
                target: Some(format!("{}/reconciler", crate::contract::PACKAGE)),
            }),
        }
    }

    /// Refuses a config that does not describe a component of operon's
    /// world, before the component is compiled. A config without a
    /// `component` section (a module, or an older writer) passes: the
    /// load's own checks of the compiled component still apply.
    pub fn check(&self) -> Result<(), ArtifactError> {
        if self.architecture != "wasm" || !self.os.starts_with("wasip") {
            return Err(ArtifactError::Platform {
                architecture: self.architecture.clone(),
                os: self.os.clone(),
            });
        }
        let Some(component) = &self.component else {
            return Ok(());
        };
        let exported = |want: &str| {
            component.exports.iter().any(|e| {
                e == want || e.ends_with(&format!("/{want}")) || e.ends_with(&format!("#{want}"))
            })
        };
        if crate::contract::REQUIRED_EXPORTS
            .iter()
            .all(|w| exported(w))
        {
            return Ok(());
        }
        Err(ArtifactError::Exports {
            found: match component.exports.as_slice() {
                [] => "nothing".into(),
                list => list.join(", "),
            },
        })
    }
}

/// `sha256:<hex>` of bytes, as OCI names content.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(exports: &[&str]) -> WasmConfig {
        WasmConfig::for_component(
            "sha256:00",
            vec![],
            exports.iter().map(|e| e.to_string()).collect(),
        )
    }

    #[test]
    fn the_config_tells_a_reconciler_from_another_world() {
        config(&["describe", "reconcile", "map-related"])
            .check()
            .unwrap();
        let err = config(&["wasi:http/incoming-handler@0.2.0"])
            .check()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the component exports wasi:http/incoming-handler@0.2.0, not the reconciler world's describe"),
            "{err}"
        );
        let mut other = config(&[]);
        other.architecture = "amd64".into();
        other.os = "linux".into();
        assert!(matches!(other.check(), Err(ArtifactError::Platform { .. })));
        let mut bare = config(&[]);
        bare.component = None;
        bare.check().unwrap();
    }

    #[test]
    fn the_config_round_trips_in_the_tag_runtime_spelling() {
        let c = config(&["describe"]);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["architecture"], "wasm");
        assert_eq!(json["os"], "wasip2");
        assert_eq!(json["layerDigests"][0], "sha256:00");
        assert_eq!(json["component"]["exports"][0], "describe");
        let back: WasmConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn digests_name_the_content() {
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
