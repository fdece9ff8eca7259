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
    /// The plugin component (.wasm).
    pub plugin: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
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
