//! Where a controller's CPU time goes, from `perf` when the machine has it:
//! a sampling profile of the process over a window, summarised by shared
//! object (host code, JIT-compiled Wasm, kernel, libc) and by symbol.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

/// A `perf record` attached to a process.
pub struct Recording {
    child: Child,
    data: PathBuf,
}

fn perf_available() -> bool {
    Command::new("perf")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts sampling `pid` (499 Hz, CPU clock); None without `perf` or
/// when the kernel refuses (perf_event_paranoid).
pub fn start(pid: u32, tag: &str) -> Option<Recording> {
    if !perf_available() {
        return None;
    }
    let data = crate::plugins::target_dir().join(format!("bench-perf-{tag}.data"));
    let child = Command::new("perf")
        .args(["record", "-F", "499", "-q", "-o"])
        .arg(&data)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(Recording { child, data })
}

impl Recording {
    /// Stops sampling and returns the Markdown summary: the share of
    /// samples per shared object and the top symbols.
    pub fn finish(mut self, title: &str) -> Result<String> {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .context("stopping perf")?;
        self.child.wait().context("waiting for perf")?;
        let report = |sort: &str, limit: &str| -> Result<String> {
            let out = Command::new("perf")
                .args(["report", "--stdio", "--no-children", "-q", "-i"])
                .arg(&self.data)
                .args(["--sort", sort, "--percent-limit", limit])
                .stderr(Stdio::null())
                .output()
                .context("running perf report")?;
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let rows = |text: &str, max: usize| -> Vec<(String, String)> {
            text.lines()
                .filter_map(|l| {
                    let l = l.trim();
                    let (pct, rest) = l.split_once('%')?;
                    pct.trim().parse::<f64>().ok()?;
                    Some((format!("{}%", pct.trim()), rest.trim().to_string()))
                })
                .take(max)
                .collect()
        };
        let mut md = format!("**{title}**\n\n| share of samples | shared object |\n|---:|---|\n");
        for (pct, dso) in rows(&report("dso", "1")?, 8) {
            md.push_str(&format!("| {pct} | `{dso}` |\n"));
        }
        md.push_str("\n| share of samples | symbol |\n|---:|---|\n");
        for (pct, sym) in rows(&report("symbol", "1")?, 12) {
            let sym = sym.trim_start_matches("[.] ").trim_start_matches("[k] ");
            // perf pads the column and may append its own empty columns.
            let sym = sym.split("   ").next().unwrap_or(sym).trim();
            let sym: String = sym.chars().take(110).collect();
            md.push_str(&format!("| {pct} | `{}` |\n", sym.replace('|', "\\|")));
        }
        md.push('\n');
        let _ = std::fs::remove_file(&self.data);
        Ok(md)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
