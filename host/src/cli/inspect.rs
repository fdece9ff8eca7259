//! `operon inspect`: what a component is and what it asks for, without
//! running a reconcile.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::{ExitCode, Failure, Output, print};
use crate::engine::{Engine, Limits};
use crate::plugin::{ComponentInfo, Plugin};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plugin component (.wasm), or `oci://registry/repository:tag`
    /// (or `@sha256:…`) for an artifact in a registry.
    pub plugin: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
    #[command(flatten)]
    pub registry: super::push::RegistryArgs,
}

/// What `inspect oci://` prints: the artifact as the registry holds it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactReport {
    reference: String,
    digest: String,
    size_bytes: usize,
    config: crate::oci::WasmConfig,
}

/// Reads an artifact (manifest, config, layer; all checked) without
/// compiling or running it.
fn inspect_artifact(text: &str, args: &Args) -> Result<(), Failure> {
    let fail = |e: &dyn std::fmt::Display| Failure::new(ExitCode::Failure, e.to_string());
    let reference = crate::oci::registry::reference(text).map_err(|e| fail(&e))?;
    let (registry, auth) = args.registry.client_for(&reference)?;
    let pulled = super::block_on(async {
        let digest = registry.resolve(&reference, &auth).await?;
        registry
            .pull(&reference.clone_with_digest(digest), &auth)
            .await
    })?
    .map_err(|e| fail(&e))?;
    let report = ArtifactReport {
        reference: reference.whole(),
        digest: pulled.digest,
        size_bytes: pulled.bytes.len(),
        config: pulled.config,
    };
    print(&report, args.output)
}

/// What `inspect` prints: the registration (CRDs shown as objects rather
/// than JSON strings) and facts about the component.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    registration: Value,
    component: &'a ComponentInfo,
}

pub fn run(engine: &Engine, args: &Args) -> Result<(), Failure> {
    if let Some(text) = args.plugin.to_str().filter(|t| t.starts_with("oci://")) {
        return inspect_artifact(text, args);
    }
    let plugin = Plugin::load_file(engine, &args.plugin, Limits::default())
        .map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", args.plugin.display())))?;
    let registration = plugin.registration();
    let mut shown = serde_json::to_value(registration)
        .map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))?;
    // Validated at load: every CRD is JSON.
    let crds: Vec<Value> = registration
        .crds
        .iter()
        .filter_map(|c| serde_json::from_str(c).ok())
        .collect();
    shown["crds"] = Value::Array(crds);
    let report = Report {
        registration: shown,
        component: plugin.info(),
    };
    print(&report, args.output)
}
