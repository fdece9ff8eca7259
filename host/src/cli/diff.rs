//! `operon diff`: what a new build of a plugin would change, offline. Both
//! builds answer every golden case ([`cases`]; expected files are not
//! read), and every field where the new answer differs from the old is
//! named ([`answer_diff`]) — the shadow rollout's comparison, before the
//! candidate reaches a cluster. Like diff(1), a difference exits non-zero
//! ([`ExitCode::Mismatch`]), so a script can ask "does this build change
//! anything?".

use std::path::PathBuf;

use super::cases;
use super::golden::{Answer, said};
use super::offline::CallArgs;
use super::{ExitCode, Failure};
use crate::answer_diff::{self, Sides};
use crate::engine::Engine;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The build in use (.wasm).
    pub old: PathBuf,
    /// The candidate build (.wasm).
    pub new: PathBuf,
    /// A case directory, or a directory of them.
    #[arg(default_value = "fixtures")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub call: CallArgs,
}

pub fn run(engine: &Engine, args: &Args) -> Result<(), Failure> {
    let old = args.call.load(engine, &args.old)?;
    let new = args.call.load(engine, &args.new)?;
    let dirs = cases::find(&args.dir)?;
    let mut changed = 0;
    for dir in &dirs {
        let case = cases::read(&args.dir, dir, args.call.now)?;
        let before = Answer::of(&old, &case).value()?;
        let after = Answer::of(&new, &case).value()?;
        let changes = answer_diff::changes(&before, &after);
        if changes.is_empty() {
            println!("same    {}", case.name);
            continue;
        }
        changed += 1;
        println!("changed {} ({} fields)", case.name, changes.len());
        for line in said(&changes, Sides::BUILDS) {
            println!("          {line}");
        }
    }
    println!(
        "{changed} of {} cases answered differently ({} -> {})",
        dirs.len(),
        args.old.display(),
        args.new.display()
    );
    if changed > 0 {
        return Err(Failure::new(
            ExitCode::Mismatch,
            format!(
                "{} answers differently from {} on {changed} of {} cases",
                args.new.display(),
                args.old.display(),
                dirs.len()
            ),
        ));
    }
    Ok(())
}
