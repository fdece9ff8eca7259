//! `operon test`: a plugin's golden cases ([`cases`]) through the real
//! engine, each answer compared with the case's expected file field by
//! field ([`answer_diff`]), with the same checks as `operon reconcile`
//! ([`offline`]). `--update` writes what the plugin answers instead, in the
//! case's format (YAML as `operon reconcile` prints it, or JSON).
//!
//! Output is one line per case (`ok` / `FAIL` / `updated`), the changed
//! fields of each failure below it, and a count; a failure exits with
//! [`ExitCode::Mismatch`].

use std::path::PathBuf;

use serde_json::Value;

use super::cases::{self, Case, Format};
use super::offline::{self, CallArgs};
use super::{ExitCode, Failure};
use crate::answer_diff::{self, Sides};
use crate::contract::Outcome;
use crate::engine::Engine;
use crate::plugin::Plugin;

/// At most this many changed fields are printed per case.
const SHOWN: usize = 20;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plugin component (.wasm).
    pub plugin: PathBuf,
    /// A case directory, or a directory of them.
    #[arg(default_value = "fixtures")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub call: CallArgs,
    /// Write each case's expected file from the plugin's answer.
    #[arg(long)]
    pub update: bool,
}

/// What the plugin answered in a case: the outcome, or what refused it.
pub struct Answer(pub Result<Outcome, offline::Refusal>);

impl Answer {
    /// Runs one case.
    pub fn of(plugin: &Plugin, case: &Case) -> Answer {
        Answer(offline::reconcile(plugin, &case.input))
    }

    /// As JSON, in the shape of an expected file.
    pub fn value(&self) -> Result<Value, Failure> {
        match &self.0 {
            Ok(outcome) => serde_json::to_value(outcome)
                .map_err(|e| Failure::new(ExitCode::Failure, e.to_string())),
            Err(refusal) => Ok(refusal.as_answer()),
        }
    }

    /// As an expected file's text: the outcome as `operon reconcile` prints
    /// it, so an updated file reads like the command's output.
    fn text(&self, format: Format) -> Result<String, Failure> {
        match &self.0 {
            Ok(outcome) => format.text(outcome),
            Err(r) => format.text(&r.as_answer()),
        }
        .map_err(fail)
    }
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(ExitCode::Failure, e.to_string())
}

/// How one case came out.
enum Verdict {
    Passed,
    Updated,
    Failed(Vec<String>),
}

pub fn run(engine: &Engine, args: &Args) -> Result<(), Failure> {
    let plugin = args.call.load(engine, &args.plugin)?;
    let dirs = cases::find(&args.dir)?;
    let (mut passed, mut failed, mut updated) = (0, 0, 0);
    for dir in &dirs {
        let case = cases::read(&args.dir, dir, args.call.now)?;
        match verdict(&plugin, &case, args.update)? {
            Verdict::Passed => {
                passed += 1;
                println!("ok      {}", case.name);
            }
            Verdict::Updated => {
                updated += 1;
                println!("updated {} ({})", case.name, case.expected_path.display());
            }
            Verdict::Failed(lines) => {
                failed += 1;
                println!("FAIL    {}", case.name);
                for line in &lines {
                    println!("          {line}");
                }
            }
        }
    }
    let mut summary = format!("{passed} passed, {failed} failed");
    if args.update {
        summary.push_str(&format!(", {updated} updated"));
    }
    println!("{summary} ({} cases, plugin {})", dirs.len(), plugin.name());
    if failed > 0 {
        return Err(Failure::new(
            ExitCode::Mismatch,
            format!(
                "{failed} of {} cases of plugin {} answered other than expected",
                dirs.len(),
                plugin.name()
            ),
        ));
    }
    Ok(())
}

fn verdict(plugin: &Plugin, case: &Case, update: bool) -> Result<Verdict, Failure> {
    let answer = Answer::of(plugin, case);
    let got = answer.value()?;
    let expected = case.expected()?;
    let changes = expected.as_ref().map(|e| answer_diff::changes(e, &got));
    if changes.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Verdict::Passed);
    }
    if update {
        std::fs::write(&case.expected_path, answer.text(case.format())?).map_err(|e| {
            Failure::new(
                ExitCode::Failure,
                format!("cannot write {}: {e}", case.expected_path.display()),
            )
        })?;
        return Ok(Verdict::Updated);
    }
    Ok(Verdict::Failed(match changes {
        Some(changes) => said(&changes, Sides::CASE),
        None => vec![format!(
            "no {} (--update writes it)",
            case.expected_path.display()
        )],
    }))
}

/// The changes in words, at most [`SHOWN`] of them.
pub fn said(changes: &[answer_diff::Change], sides: Sides) -> Vec<String> {
    let mut lines: Vec<String> = changes
        .iter()
        .take(SHOWN)
        .map(|c| c.say(sides).to_string())
        .collect();
    if changes.len() > SHOWN {
        lines.push(format!("... and {} more", changes.len() - SHOWN));
    }
    lines
}
