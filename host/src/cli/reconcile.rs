//! `operon reconcile`: one reconcile, offline, on objects from files,
//! checked before and after the call as `operon run` checks it
//! ([`offline`]): what the cluster would refuse is refused here.

use std::path::PathBuf;

use super::offline::{self, CallArgs, Input, Refusal};
use super::{ExitCode, Failure, Output, input, print};
use crate::engine::Engine;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plugin component (.wasm).
    pub plugin: PathBuf,
    /// The parent object (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    pub parent: PathBuf,
    /// Observed children (YAML documents, JSON, or a List); repeatable.
    #[arg(long, value_name = "FILE")]
    pub observed: Vec<PathBuf>,
    /// Other objects the plugin may read through `cluster`; repeatable.
    #[arg(long, value_name = "FILE")]
    pub related: Vec<PathBuf>,
    /// Plugin configuration, `key=value`; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Reconcile as if the parent were being deleted (finalizer call).
    #[arg(long)]
    pub finalizing: bool,
    #[command(flatten)]
    pub call: CallArgs,
    /// Hand the plugin a parent its CRD's schema refuses (to test the
    /// plugin's own checks); by default such a parent is refused as the
    /// API server would refuse it.
    #[arg(long)]
    pub skip_schema: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
}

/// A `--config` value that is not `KEY=VALUE`.
#[derive(Debug, thiserror::Error)]
#[error("expected KEY=VALUE, got {0:?}")]
pub struct NotKeyValue(String);

fn parse_key_value(s: &str) -> Result<(String, String), NotKeyValue> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(NotKeyValue(s.to_string())),
    }
}

pub fn run(engine: &Engine, args: &Args) -> Result<(), Failure> {
    let parent = input::read_one(&args.parent)?;
    let mut observed = Vec::new();
    for path in &args.observed {
        observed.extend(input::read_objects(path)?);
    }
    let mut related = Vec::new();
    for path in &args.related {
        related.extend(input::read_objects(path)?);
    }
    let mut input = Input::new(parent, observed, related)?;
    input.config = args.config.clone();
    input.finalizing = args.finalizing;
    input.now = args.call.now;
    input.skip_schema = args.skip_schema;
    let plugin = args.call.load(engine, &args.plugin)?;
    match offline::reconcile(&plugin, &input) {
        Ok(outcome) => print(&outcome, args.output),
        Err(refusal @ Refusal::Schema { .. }) => Err(Failure::new(
            ExitCode::Failure,
            format!("{refusal} (--skip-schema hands it to the plugin anyway)"),
        )),
        Err(refusal) => Err(refusal.into()),
    }
}
