//! `cargo xtask bench`: runs the benchmarks and rewrites BENCHMARKS.md with
//! their figures, the command and the machine.
//!
//! Sections, each one function returning its Markdown (and the goals of
//! issue 9 it reports on), so a new one is one more line in [`run`]:
//! - engine micro-benchmarks and Wasm vs native reconciles (`host/benches`,
//!   run through `cargo bench`, one process each);
//! - end to end, memory, idle CPU and a resync of converged parents on
//!   private control planes, `operon run` against the native baseline
//!   (`baselines/native-memcached`) in the same run ([`e2e`], [`memory`],
//!   [`idle`], [`resync`]);
//! - hot swap latency on a private control plane ([`swap`]), and from a
//!   registry with Manual activation ([`packages`]);
//! - leader election: handover and failover beside a restart ([`leader`]);
//! - faults of the connection and of the control plane ([`faults`]), and
//!   a half-hour soak of churn and hot swaps ([`soak`]).
//!
//! `--only <section>` measures one section and splices it into the existing
//! BENCHMARKS.md (its headings and goal rows replaced, a line saying what
//! was re-measured when), so one figure can be refreshed without the whole
//! half-hour run.

mod cluster;
mod controllers;
mod e2e;
mod faults;
mod idle;
mod leader;
mod memory;
mod packages;
mod procfs;
mod profile;
mod resync;
mod soak;
mod stats;
mod swap;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::plugins;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fewer samples, parents and runs: a quick look in a few minutes, not
    /// figures to publish (BENCHMARKS.md says so).
    #[arg(long)]
    pub quick: bool,
    /// Measure only this section and splice it into BENCHMARKS.md.
    #[arg(long, value_enum)]
    pub only: Option<Only>,
}

/// The sections, as `--only` names them.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Only {
    Engine,
    Native,
    E2e,
    Resync,
    Memory,
    Idle,
    Swap,
    Packages,
    Leader,
    Faults,
    Soak,
}

/// A section run on private control planes.
type ClusterSection =
    for<'a> fn(&'a Setup) -> std::pin::Pin<Box<dyn Future<Output = Result<Section>> + 'a>>;

/// What every section gets.
pub struct Setup {
    pub quick: bool,
    pub bins: controllers::Binaries,
}

/// A section of BENCHMARKS.md and the goals it measured.
pub struct Section {
    pub markdown: String,
    pub goals: Vec<Goal>,
}

/// One of the goals, as measured.
pub struct Goal {
    pub goal: &'static str,
    pub target: String,
    pub measured: String,
    /// None: not measured (yet).
    pub met: Option<bool>,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let kb: u64 = t.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb as f64 / 1024.0 / 1024.0)
        })
        .unwrap_or(0.0);
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!(", Linux {}", k.trim()))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB memory{kernel}, {rustc}")
}

/// Runs `cargo bench -p operon --bench <name>` (release, one process) and
/// returns the Markdown it wrote.
fn cargo_bench(name: &str, wasm_dir: &Path, quick: bool) -> Result<Section> {
    let report = plugins::target_dir().join(format!("bench-{name}.md"));
    let mut cmd = plugins::cargo();
    cmd.args(["bench", "-p", "operon", "--bench", name])
        .env("OPERON_PLUGIN_DIR", wasm_dir)
        .env("OPERON_BENCH_REPORT", &report);
    if quick {
        cmd.env("OPERON_BENCH_QUICK", "1");
    }
    plugins::run(&mut cmd)?;
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("reading {}", report.display()))?;
    let markdown = text
        .lines()
        .filter(|l| !l.starts_with("<!-- goal:"))
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(Section {
        goals: goals_in(&text),
        markdown,
    })
}

/// Goals a `cargo bench` report states in lines of the form
/// `<!-- goal: name | target | measured | met -->`.
fn goals_in(markdown: &str) -> Vec<Goal> {
    markdown
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<!-- goal:")?.strip_suffix("-->"))
        .filter_map(|g| {
            let parts: Vec<&str> = g.split('|').map(str::trim).collect();
            let [goal, target, measured, met] = parts.as_slice() else {
                return None;
            };
            Some(Goal {
                goal: match *goal {
                    "wasm-native-postgres" => "Wasm / native reconcile, Postgres plugin",
                    "wasm-native-memcached" => "Wasm / native reconcile, memcached",
                    _ => return None,
                },
                target: target.to_string(),
                measured: measured.to_string(),
                met: match *met {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => None,
                },
            })
        })
        .collect()
}

/// Builds `operon` and the baseline in release, and a plugin directory
/// holding only the memcached component.
fn binaries(wasm_dir: &Path) -> Result<controllers::Binaries> {
    eprintln!("xtask bench: building operon and native-memcached (release)");
    plugins::run(plugins::cargo().args([
        "build",
        "--release",
        "-p",
        "operon",
        "-p",
        "native-memcached",
        // `--bin` filters every package given: name both binaries.
        "--bin",
        "operon",
        "--bin",
        "native-memcached",
    ]))?;
    let release = plugins::target_dir().join("release");
    let dir = plugins::target_dir().join("bench-plugins");
    std::fs::create_dir_all(&dir)?;
    let wasm = "rust_memcached.wasm";
    std::fs::copy(wasm_dir.join(wasm), dir.join(wasm))
        .with_context(|| format!("copying {wasm} into {}", dir.display()))?;
    Ok(controllers::Binaries {
        operon: release.join("operon"),
        native: release.join("native-memcached"),
        plugins: dir,
        logs: plugins::target_dir().join("bench-logs"),
        extra: Vec::new(),
    })
}

pub fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let wasm_dir = plugins::build_all()?;
    let bins = binaries(&wasm_dir)?;
    let setup = Setup {
        quick: args.quick,
        bins,
    };
    let wanted = |o: Only| args.only.is_none_or(|w| w == o);
    let mut sections = Vec::new();
    for (only, name) in [(Only::Engine, "engine"), (Only::Native, "native")] {
        if wanted(only) {
            sections.push(cargo_bench(name, &wasm_dir, args.quick)?);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // A cluster section that fails (a timeout on a loaded machine, say) is
    // reported in its place; the figures of the others are not thrown away.
    let cluster_sections: [(Only, &str, ClusterSection); 9] = [
        (Only::E2e, "End to end", |s| Box::pin(e2e::section(s))),
        (Only::Resync, "Resync", |s| Box::pin(resync::section(s))),
        (Only::Memory, "Memory", |s| Box::pin(memory::section(s))),
        (Only::Idle, "Steady state", |s| Box::pin(idle::section(s))),
        (Only::Swap, "Hot swap: swap latency", |s| {
            Box::pin(swap::section(s))
        }),
        (
            Only::Packages,
            "Hot swap from a registry: Manual activation",
            |s| Box::pin(packages::section(s)),
        ),
        (
            Only::Leader,
            "Leader election: handover and failover",
            |s| Box::pin(leader::section(s)),
        ),
        (
            Only::Faults,
            "Faults: the connection to the API server",
            |s| Box::pin(faults::section(s)),
        ),
        (Only::Soak, "Soak", |s| Box::pin(soak::section(s))),
    ];
    for (only, title, section) in cluster_sections {
        if !wanted(only) {
            continue;
        }
        match rt.block_on(section(&setup)) {
            Ok(s) => sections.push(s),
            Err(e) => {
                eprintln!("xtask bench: {title} failed: {e:#}");
                sections.push(Section {
                    markdown: format!("## {title}\n\nNot measured in this run: {e:#}\n\n"),
                    goals: Vec::new(),
                });
            }
        }
    }

    if let Some(only) = args.only {
        return splice(only, args.quick, &sections, started);
    }
    let command = if args.quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    let mut out = String::new();
    writeln!(out, "# Benchmarks\n")?;
    writeln!(
        out,
        "Written by `{command}`; do not edit by hand, run it again.\n"
    )?;
    if args.quick {
        writeln!(
            out,
            "**Quick mode**: fewer calls, fewer parents (200 end to end, 2 000 for memory) and one \
             run per controller; a quick look, not figures to publish.\n"
        )?;
    }
    writeln!(out, "- Machine: {}", machine())?;
    writeln!(out, "- Date (UTC): {}", utc_now())?;
    writeln!(
        out,
        "- Harness: `host/benches/engine.rs`, `host/benches/native.rs` (release, one process \
         each); `xtask/src/bench/` for the cluster figures (release binaries, private control \
         planes). Baselines are measured in the same run. Took {:.0} min.\n",
        started.elapsed().as_secs_f64() / 60.0
    )?;
    writeln!(out, "## Goals (issues 6, 9 and 18)\n")?;
    writeln!(out, "| goal | target | measured | met |\n|---|---|---|---|")?;
    for g in sections.iter().flat_map(|s| &s.goals) {
        writeln!(
            out,
            "| {} | {} | {} | {} |",
            g.goal,
            g.target,
            g.measured,
            match g.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            }
        )?;
    }
    out.push('\n');
    for s in &sections {
        out.push_str(&s.markdown);
        if !s.markdown.ends_with("\n\n") {
            out.push('\n');
        }
    }
    writeln!(
        out,
        "Reproduce: `cargo xtask bench` (quick look: `cargo xtask bench --quick`)."
    )?;
    let path = plugins::root().join("BENCHMARKS.md");
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "xtask: wrote {} in {:.0?}",
        path.display(),
        started.elapsed()
    );
    Ok(())
}

/// Replaces, in the existing BENCHMARKS.md, the blocks under the headings
/// the new sections have and the goal rows they measured; says what was
/// re-measured under the header.
fn splice(
    only: Only,
    quick: bool,
    sections: &[Section],
    started: std::time::Instant,
) -> Result<()> {
    let path = plugins::root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run the whole bench once first)",
            path.display()
        )
    })?;
    let mut markdown = String::new();
    for s in sections {
        markdown.push_str(&s.markdown);
        if !markdown.ends_with("\n\n") {
            markdown.push('\n');
        }
    }
    let headings: Vec<&str> = markdown.lines().filter(|l| l.starts_with("## ")).collect();
    // Split the old file into blocks at `## ` headings (the preamble first).
    let mut blocks: Vec<String> = vec![String::new()];
    for line in old.lines() {
        if line.starts_with("## ") || line.starts_with("Reproduce:") {
            blocks.push(String::new());
        }
        let last = blocks.last_mut().expect("one block at least");
        last.push_str(line);
        last.push('\n');
    }
    let mut out = String::new();
    let mut placed = false;
    for block in &blocks {
        let heading = block.lines().next().unwrap_or_default();
        if headings.contains(&heading) {
            if !placed {
                out.push_str(&markdown);
                placed = true;
            }
            continue;
        }
        if heading.starts_with("Reproduce:") && !placed {
            out.push_str(&markdown);
            placed = true;
        }
        if heading.starts_with("## Goals") {
            out.push_str(&splice_goals(block, sections));
            continue;
        }
        out.push_str(block);
    }
    let command = format!(
        "cargo xtask bench --only {}{}",
        format!("{only:?}").to_lowercase(),
        if quick { " --quick" } else { "" }
    );
    let note = format!(
        "- Re-measured alone: {} (`{command}`, {}, {:.0} min).\n",
        headings
            .iter()
            .map(|h| h.trim_start_matches("## "))
            .collect::<Vec<_>>()
            .join("; "),
        utc_now(),
        started.elapsed().as_secs_f64() / 60.0
    );
    let out = match out.find("\n## ") {
        Some(at) => {
            let (head, rest) = out.split_at(at);
            let head: String = head
                .lines()
                .filter(|l| !l.contains(&format!("`{command}`")))
                .map(|l| format!("{l}\n"))
                .collect();
            format!(
                "{}{note}{rest}",
                head.trim_end_matches('\n').to_string() + "\n"
            )
        }
        None => out,
    };
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: updated {} ({command})", path.display());
    Ok(())
}

/// The goals table with the rows of `sections` replaced or appended.
fn splice_goals(block: &str, sections: &[Section]) -> String {
    let goals: Vec<&Goal> = sections.iter().flat_map(|s| &s.goals).collect();
    let row = |g: &Goal| {
        format!(
            "| {} | {} | {} | {} |",
            g.goal,
            g.target,
            g.measured,
            match g.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            }
        )
    };
    let mut lines: Vec<String> = Vec::new();
    let mut done = vec![false; goals.len()];
    for line in block.lines() {
        match goals
            .iter()
            .position(|g| line.starts_with(&format!("| {} |", g.goal)))
        {
            Some(i) => {
                lines.push(row(goals[i]));
                done[i] = true;
            }
            None => lines.push(line.to_string()),
        }
    }
    // New rows go after the table's last row.
    let last = lines
        .iter()
        .rposition(|l| l.starts_with('|'))
        .map_or(lines.len(), |i| i + 1);
    let new: Vec<String> = goals
        .iter()
        .zip(&done)
        .filter(|(_, d)| !**d)
        .map(|(g, _)| row(g))
        .collect();
    lines.splice(last..last, new);
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
