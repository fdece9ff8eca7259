//! `operon push`: a component to a registry as a Wasm OCI artifact; and the
//! registry options `push` and `inspect oci://` share.

use std::path::PathBuf;

use oci_client::secrets::RegistryAuth;

use super::{ExitCode, Failure};
use crate::engine::{Engine, Limits};
use crate::oci::registry::{self, RegistryOptions};
use crate::oci::{Registry, WasmConfig, auth, digest_of};
use crate::plugin::Plugin;

/// How to reach a registry from the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Talk to the registry over plain HTTP (a local test registry).
    #[arg(long)]
    pub plain_http: bool,
    /// User for basic auth (with --password or $OPERON_REGISTRY_PASSWORD).
    #[arg(long, requires = "password")]
    pub username: Option<String>,
    #[arg(long, env = "OPERON_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Docker config with credentials [default: ~/.docker/config.json when
    /// it exists].
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,
}

impl RegistryArgs {
    /// A client for `reference`'s registry and the credentials to use.
    pub fn client_for(
        &self,
        reference: &oci_client::Reference,
    ) -> Result<(Registry, RegistryAuth), Failure> {
        let mut options = RegistryOptions::default();
        if self.plain_http {
            options.plain_http.push(reference.registry().to_string());
        }
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            _ => self.docker_auth(reference.registry())?,
        };
        Ok((Registry::new(options), auth))
    }

    fn docker_auth(&self, registry: &str) -> Result<RegistryAuth, Failure> {
        let path = match &self.docker_config {
            Some(p) => p.clone(),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker/config.json"),
                None => return Ok(RegistryAuth::Anonymous),
            },
        };
        if self.docker_config.is_none() && !path.exists() {
            return Ok(RegistryAuth::Anonymous);
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            Failure::new(
                ExitCode::Failure,
                format!("reading {}: {e}", path.display()),
            )
        })?;
        auth::for_registry(&bytes, registry)
            .map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", path.display())))
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plugin component (.wasm).
    pub plugin: PathBuf,
    /// Where to push it: `registry/repository:tag`.
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Loads the component (so only a valid plugin is pushed), pushes it, and
/// prints the manifest digest.
pub fn run(engine: &Engine, args: &Args) -> Result<(), Failure> {
    let bytes = std::fs::read(&args.plugin).map_err(|e| {
        Failure::new(
            ExitCode::Failure,
            format!("reading {}: {e}", args.plugin.display()),
        )
    })?;
    let plugin = Plugin::load(engine, &bytes, Limits::default())
        .map_err(|e| Failure::new(ExitCode::Failure, format!("{}: {e}", args.plugin.display())))?;
    let info = plugin.info();
    let config = WasmConfig::for_component(
        &digest_of(&bytes),
        info.imports.clone(),
        info.exports.clone(),
    );
    let reference = registry::reference(&args.reference)
        .map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))?;
    let (registry, auth) = args.registry.client_for(&reference)?;
    let digest = super::block_on(registry.push(&reference, &bytes, &config, &auth))?
        .map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))?;
    eprintln!(
        "pushed plugin {} {} ({} bytes) to {}",
        plugin.name(),
        plugin.registration().version,
        bytes.len(),
        reference.whole()
    );
    println!("{digest}");
    Ok(())
}
