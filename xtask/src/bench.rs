//! `cargo xtask bench`: runs the benchmarks and rewrites BENCHMARKS.md with
//! their figures, the command and the machine.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use crate::plugins;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fewer samples: a quick look, not figures to publish.
    #[arg(long)]
    pub quick: bool,
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
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB memory, {rustc}")
}

pub fn run(args: Args) -> Result<()> {
    let wasm_dir = plugins::build_all()?;
    let report = plugins::target_dir().join("bench-engine.md");
    let mut cmd = plugins::cargo();
    cmd.args(["bench", "-p", "operon", "--bench", "engine"])
        .env("OPERON_PLUGIN_DIR", &wasm_dir)
        .env("OPERON_BENCH_REPORT", &report);
    if args.quick {
        cmd.env("OPERON_BENCH_QUICK", "1");
    }
    plugins::run(&mut cmd)?;
    let engine = std::fs::read_to_string(&report)
        .with_context(|| format!("reading {}", report.display()))?;
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
    writeln!(out, "- Machine: {}", machine())?;
    writeln!(out, "- Date (UTC): {}", utc_now())?;
    writeln!(
        out,
        "- Harness: `host/benches/engine.rs` (release build, one process, figures side by side in one run)\n"
    )?;
    out.push_str(&engine);
    let path = plugins::root().join("BENCHMARKS.md");
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
