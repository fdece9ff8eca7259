//! `operon rbac`: the RBAC objects for `operon run --impersonate`, printed
//! as YAML for a cluster admin to review and apply.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ExitCode, Failure};
use crate::engine::Engine;
use crate::kinds::Kinds;
use crate::plugin::GrantsFile;
use crate::rbac::{RbacOptions, objects};
use crate::runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of plugin components (*.wasm), as given to `operon run`.
    #[arg(long, value_name = "DIR")]
    pub plugins: PathBuf,
    /// The grants file given to `operon run`.
    #[arg(long, value_name = "FILE")]
    pub grants: Option<PathBuf>,
    /// Namespace of the ServiceAccounts (the `--impersonate` value).
    #[arg(long, value_name = "NS", default_value = "operon-system")]
    pub impersonate: String,
    /// The host's `--namespace`: bind the plugins' roles in it only.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The host's own ServiceAccount (in the `--impersonate` namespace).
    #[arg(long, value_name = "NAME", default_value = "operon-host")]
    pub host_account: String,
    /// The host runs with `--skip-crds` (needs no CRD write access).
    #[arg(long)]
    pub skip_crds: bool,
    /// Kubeconfig, to resolve kinds to resources through discovery.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// The grants file, or the defaults when none is given.
pub fn grants(path: Option<&Path>) -> Result<GrantsFile, Failure> {
    match path {
        Some(path) => Ok(GrantsFile::read(path)?),
        None => Ok(GrantsFile::default()),
    }
}

pub fn run(engine: &Engine, args: &Args) -> Result<(), Failure> {
    let grants = grants(args.grants.as_deref())?;
    let plugins = runtime::load_plugins(engine, &args.plugins, &grants)?;
    let opts = RbacOptions {
        account_namespace: args.impersonate.clone(),
        watch_namespace: args.namespace.clone(),
        host_account: args.host_account.clone(),
        install_crds: !args.skip_crds,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ExitCode::Failure, format!("starting the runtime: {e}")))?;
    let objects = rt.block_on(async {
        let client = runtime::client(args.kubeconfig.as_deref()).await?;
        let kinds = Kinds::new(client);
        let plugins: Vec<Arc<_>> = plugins;
        objects(&kinds, &plugins, &grants, &opts).await
    })?;
    let text = serde_saphyr::to_string_multiple(&objects)
        .map_err(|e| Failure::new(ExitCode::Failure, format!("writing YAML: {e}")))?;
    print!("{text}");
    Ok(())
}
