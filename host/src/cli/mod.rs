//! The `operon` command line.
//!
//! Every failure ends the process with one line on stderr that names the
//! object and the cause, and an exit code that tells scripts what kind of
//! failure it was (see [`ExitCode`]).

mod cases;
mod diff;
mod golden;
mod input;
mod inspect;
mod offline;
mod plugins;
mod push;
mod rbac;
mod reconcile;
mod record;
mod run;
mod scopes;

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{Engine, EngineConfig, Report};

pub use input::{parse_objects, read_objects};

#[derive(Parser, Debug)]
#[command(
    name = "operon",
    version,
    about = "Kubernetes reconcilers as sandboxed WebAssembly components"
)]
pub struct Cli {
    /// Directory of the compiled-component cache
    /// [default: $OPERON_CACHE_DIR or ~/.cache/operon/compiled]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every time instead of using the cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// More logs on stderr: -v shows the plugin's own logs and output,
    /// -vv debug details. `OPERON_LOG` (a tracing filter) overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one reconcile offline and print the plugin's full response.
    Reconcile(reconcile::Args),
    /// Run a plugin's golden cases (a directory each: parent, observed,
    /// related, case.yaml -> expected) and show what differs; `--update`
    /// rewrites the expected files.
    Test(golden::Args),
    /// What a new build would change: both builds on the same golden
    /// cases, every changed field named.
    Diff(diff::Args),
    /// Print a plugin's registration, imports, exports, size and compile time;
    /// for `oci://` references, the artifact in the registry, without
    /// running it.
    Inspect(inspect::Args),
    /// Push a component to a registry as a Wasm OCI artifact; prints the
    /// manifest digest.
    Push(push::Args),
    /// Run the controllers of a plugin directory against a cluster.
    /// (Boxed: its flags outweigh every other command's.)
    Run(Box<run::Args>),
    /// Print the RBAC objects `operon run --impersonate` needs (YAML).
    Rbac(rbac::Args),
    /// What a running host runs: revisions, shadow candidates, rejected
    /// builds; roll a plugin back; record its traffic as golden cases.
    Plugins(plugins::Args),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Yaml,
    Json,
}

/// Process exit codes, so scripts can tell failures apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Input, file or load problem (includes "not a component").
    Failure = 1,
    /// The plugin returned a `retryable` or `permanent` error.
    PluginError = 3,
    /// The plugin trapped, hit a limit, or answered malformed output.
    Trap = 4,
    /// The plugin answered what `operon run` would refuse to apply: a kind
    /// it does not own, another namespace, more children or bytes than its
    /// grant allows.
    Refused = 5,
    /// `operon test`: a case answered other than its expected file;
    /// `operon diff`: the two builds answered differently.
    Mismatch = 6,
}

/// An error carrying its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::new(ExitCode::Failure, format!("{e:#}"))
    }
}

/// Runs a future to completion on a small runtime: the offline commands
/// that talk to a registry are otherwise synchronous.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ExitCode::Failure, format!("starting a runtime: {e}")))?;
    Ok(rt.block_on(future))
}

/// Prints a value as YAML or JSON on stdout.
fn print(value: &impl serde::Serialize, output: Output) -> Result<(), Failure> {
    let text = match output {
        Output::Json => serde_json::to_string_pretty(value)
            .map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))?,
        Output::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| Failure::new(ExitCode::Failure, e.to_string()))?,
    };
    println!("{}", text.trim_end());
    Ok(())
}

impl Cli {
    fn engine(&self) -> Result<Engine, Failure> {
        let mut config = EngineConfig::default();
        if self.no_cache {
            config.cache_dir = None;
        } else if let Some(dir) = &self.cache_dir {
            config.cache_dir = Some(dir.clone());
        }
        // Offline commands run one call at a time; a small pool is enough.
        // A person at a terminal sees a long first compile's progress.
        if !matches!(self.command, Command::Run(_)) {
            config.pool_instances = 4;
            if std::io::stderr().is_terminal() {
                config.progress = Report::Terminal;
            }
        }
        Engine::new(config)
            .map_err(|e| Failure::new(ExitCode::Failure, format!("starting the engine: {e:#}")))
    }

    /// Runs the chosen command.
    pub fn run(self) -> Result<(), Failure> {
        if let Command::Plugins(args) = &self.command {
            // Talks to a running host; no engine needed.
            return plugins::run(args);
        }
        let engine = self.engine()?;
        match &self.command {
            Command::Reconcile(args) => reconcile::run(&engine, args),
            Command::Test(args) => golden::run(&engine, args),
            Command::Diff(args) => diff::run(&engine, args),
            Command::Inspect(args) => inspect::run(&engine, args),
            Command::Push(args) => push::run(&engine, args),
            Command::Run(args) => run::run(engine, args),
            Command::Rbac(args) => rbac::run(&engine, args),
            Command::Plugins(args) => plugins::run(args),
        }
    }
}
