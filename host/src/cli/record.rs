//! `operon plugins record <name> DIR`: the next reconciles a running host
//! hands a plugin, saved as golden cases, so that a candidate build can be
//! tested offline (`operon test`) against real traffic.
//!
//! The host records ([`crate::plugin::recorder`]): the parent and children
//! as handed over, what the plugin read, its clock, config and answer, with
//! every Secret's values redacted before they leave it. This side asks for
//! the recording, shows its progress on stderr while it waits, fetches the
//! records, stops the recording, and writes one case directory per record
//! in the format [`cases`](super::cases) reads: the same plugin passes on them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::cases::Format;
use super::plugins::{ClientError, ask};
use super::{ExitCode, Failure};
use crate::plugin::recorder::{MAX_COUNT, Progress, Record};
use crate::plugin::redact;
use crate::server::AdminRequest;

/// How often the host is asked how far the recording is.
const POLL: Duration = Duration::from_millis(500);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plugin, as `operon plugins list` names it.
    pub name: String,
    /// Where the cases go: one directory per reconcile, named after its
    /// parent (`<namespace>-<name>`, `-2`, `-3`... for repeats); existing
    /// cases are kept.
    pub dir: PathBuf,
    /// How many reconciles to record (at most 500).
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT as u64))]
    pub count: u64,
    /// Stop waiting after this many seconds and write what was recorded.
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub timeout_s: u64,
}

/// Why no cases were written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The host refused: no such plugin, shutting down.
    #[error("recording plugin {name}: {message}")]
    Refused { name: String, message: String },
    /// The host answered what this version cannot read.
    #[error("recording plugin {name}: unreadable answer from the host: {source}")]
    Unreadable {
        name: String,
        source: serde_json::Error,
    },
    /// The plugin had no reconcile to record before the timeout.
    #[error(
        "no reconcile of plugin {name} within {after:?}: a reconcile is recorded when a parent (or a child) changes"
    )]
    Nothing { name: String, after: Duration },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<RecordError> for Failure {
    fn from(e: RecordError) -> Failure {
        Failure::new(ExitCode::Failure, e.to_string())
    }
}

pub fn run(admin: std::net::SocketAddr, args: &Args) -> Result<(), Failure> {
    let name = &args.name;
    let host = Host { admin, name };
    let timeout = Duration::from_secs(args.timeout_s);
    let started = Instant::now();
    let count = args.count as usize;
    let mut shown = None;
    let progress = loop {
        let progress: Progress = host.progress(AdminRequest::Record {
            name: name.clone(),
            count,
        })?;
        if shown != Some(progress.recorded) {
            eprintln!("recorded {}/{}", progress.recorded, progress.wanted);
            shown = Some(progress.recorded);
        }
        if !progress.recording || started.elapsed() >= timeout {
            break progress;
        }
        std::thread::sleep(POLL);
    };
    let fetched = host.ask(AdminRequest::Recorded(name.clone()))?;
    let records: Vec<Record> = host.read(fetched["records"].clone())?;
    host.ask(AdminRequest::StopRecording(name.clone()))?;
    if records.is_empty() {
        return Err(RecordError::Nothing {
            name: name.clone(),
            after: timeout,
        }
        .into());
    }
    if progress.full {
        eprintln!(
            "the host's recorder is full ({} MiB): {} of {} reconciles recorded",
            crate::plugin::recorder::MAX_BYTES >> 20,
            records.len(),
            progress.wanted
        );
    } else if records.len() < progress.wanted {
        eprintln!(
            "{} of {} reconciles recorded within {timeout:?}",
            records.len(),
            progress.wanted
        );
    }
    let written = write(&args.dir, name, &records)?;
    for dir in &written {
        println!("{}", dir.display());
    }
    println!(
        "{} cases of plugin {name} in {} (`operon test <plugin.wasm> {}` replays them)",
        written.len(),
        args.dir.display(),
        args.dir.display()
    );
    Ok(())
}

/// The admin endpoint, for one plugin's recording.
struct Host<'a> {
    admin: std::net::SocketAddr,
    name: &'a String,
}

impl Host<'_> {
    /// The body of a 200, else what the host said instead.
    fn ask(&self, request: AdminRequest) -> Result<Value, RecordError> {
        let (status, body) = ask(self.admin, &request)?;
        if status != 200 {
            let message = body["error"].as_str().unwrap_or("unexpected answer");
            return Err(RecordError::Refused {
                name: self.name.clone(),
                message: message.to_string(),
            });
        }
        Ok(body)
    }

    fn progress(&self, request: AdminRequest) -> Result<Progress, RecordError> {
        let body = self.ask(request)?;
        self.read(body["progress"].clone())
    }

    fn read<T: serde::de::DeserializeOwned>(&self, value: Value) -> Result<T, RecordError> {
        serde_json::from_value(value).map_err(|source| RecordError::Unreadable {
            name: self.name.clone(),
            source,
        })
    }
}

/// Writes one case directory per record under `root` (created), in the
/// format [`cases::read`](super::cases::read) reads; the directories written, in order.
pub fn write(root: &Path, plugin: &str, records: &[Record]) -> Result<Vec<PathBuf>, RecordError> {
    let mut written = Vec::new();
    for record in records {
        let dir = free_dir(root, &case_name(&record.parent));
        for (file, text) in case_files(plugin, record) {
            let path = dir.join(file);
            let failed = |source| RecordError::Write {
                path: path.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(failed)?;
            std::fs::write(&path, text).map_err(failed)?;
        }
        written.push(dir);
    }
    Ok(written)
}

/// `root/<name>`, or `-2`, `-3`... when taken.
fn free_dir(root: &Path, name: &str) -> PathBuf {
    let mut dir = root.join(name);
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = root.join(format!("{name}-{n}"));
    }
    dir
}

/// `<namespace>-<name>` of a parent (its name when cluster-scoped), with
/// anything a directory name should not hold replaced.
fn case_name(parent: &Value) -> String {
    let get = |p| parent.pointer(p).and_then(Value::as_str).unwrap_or("");
    let name = match (get("/metadata/namespace"), get("/metadata/name")) {
        (_, "") => "parent".to_string(),
        ("", name) => name.to_string(),
        (ns, name) => format!("{ns}-{name}"),
    };
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect()
}

/// How a recorded case is called: the fields of a `case.yaml` ([`super::cases`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CaseOptions<'a> {
    now: &'a str,
    finalizing: bool,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    config: &'a std::collections::BTreeMap<String, String>,
}

/// The files of a record's case, and their text.
fn case_files(plugin: &str, record: &Record) -> Vec<(&'static str, String)> {
    let mut files = vec![("parent.yaml", yaml(&record.parent))];
    if !record.observed.is_empty() {
        files.push(("observed.yaml", yaml(&record.observed)));
    }
    if !record.related.is_empty() {
        files.push(("related.yaml", yaml(&record.related)));
    }
    let mut header = format!(
        "# Recorded by `operon plugins record` from plugin {plugin}, revision {}.\n",
        record.revision
    );
    if !record.redacted.is_empty() {
        header.push_str(&format!(
            "# Secrets redacted (every value of data and stringData reads \"{}\"): {}.\n\
             # The expected answer is the revision's to this redacted input.\n",
            redact::PLACEHOLDER,
            record.redacted.join(", ")
        ));
    }
    let options = CaseOptions {
        now: &record.now,
        finalizing: record.finalizing,
        config: &record.config,
    };
    files.push(("case.yaml", format!("{header}{}", yaml(&options))));
    files.push(("expected.yaml", yaml(&record.answer)));
    files
}

/// As a YAML case file.
fn yaml(value: &impl Serialize) -> String {
    // Values that came in as JSON always serialize.
    Format::Yaml.text(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::cases;
    use crate::cli::offline::parse_now;
    use serde_json::json;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("operon-record-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn record(name: &str) -> Record {
        Record {
            parent: json!({"apiVersion": "cache.operon.dev/v1alpha1", "kind": "Memcached",
                "metadata": {"name": name, "namespace": "team", "uid": "u-1"},
                // Strings YAML would read as other types stay strings.
                "spec": {"size": 2, "version": "1.10", "flag": "true", "empty": null}}),
            observed: vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "team"}, "spec": {"replicas": 2}})],
            related: vec![json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "creds", "namespace": "team"},
                "data": {"password": redact::PLACEHOLDER_BASE64}})],
            config: [("mode".to_string(), "fast".to_string())].into(),
            now: "2026-01-02T03:04:05.123456789Z".into(),
            finalizing: true,
            answer: json!({"children": [], "status": {"ready": "no"}, "events": [],
                "requeueAfterMs": 1000, "finalized": true, "patches": []}),
            redacted: vec!["team/creds".into()],
            revision: "0123456789ab".into(),
        }
    }

    #[test]
    fn cases_read_back_as_recorded() {
        let root = scratch("read-back");
        let records = [record("a"), record("a"), record("b")];
        let written = write(&root, "memcached", &records).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|d| d.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["team-a", "team-a-2", "team-b"]);
        for (dir, record) in written.iter().zip(&records) {
            let case = cases::read(&root, dir, None).unwrap();
            assert_eq!(case.input.parent, record.parent);
            assert_eq!(case.input.now, Some(parse_now(&record.now).unwrap()));
            assert!(case.input.finalizing);
            assert!(!case.input.skip_schema);
            assert_eq!(case.input.config, [("mode".into(), "fast".into())]);
            assert_eq!(case.expected().unwrap(), Some(record.answer.clone()));
            let read = |f: &str| crate::cli::input::read_objects(&dir.join(f)).unwrap();
            assert_eq!(read("observed.yaml"), record.observed);
            assert_eq!(read("related.yaml"), record.related);
        }
        let case_yaml = std::fs::read_to_string(written[0].join("case.yaml")).unwrap();
        assert!(
            case_yaml.contains("Secrets redacted") && case_yaml.contains("team/creds"),
            "{case_yaml}"
        );
        // A second recording into the same directory keeps the first.
        let again = write(&root, "memcached", &records[..1]).unwrap();
        assert_eq!(again, [root.join("team-a-3")]);
    }

    #[test]
    fn a_plain_case_has_no_optional_files() {
        let root = scratch("plain");
        let mut r = record("c");
        r.observed.clear();
        r.related.clear();
        r.redacted.clear();
        r.config.clear();
        r.finalizing = false;
        r.answer = json!({"error": {"permanent": "spec.size: must be at least 1"}});
        let dir = &write(&root, "memcached", &[r.clone()]).unwrap()[0];
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, ["case.yaml", "expected.yaml", "parent.yaml"]);
        let case = cases::read(&root, dir, None).unwrap();
        assert!(!case.input.finalizing && case.input.config.is_empty());
        assert_eq!(case.expected().unwrap(), Some(r.answer));
        let case_yaml = std::fs::read_to_string(dir.join("case.yaml")).unwrap();
        assert!(!case_yaml.contains("redacted"), "{case_yaml}");
    }

    #[test]
    fn case_names_come_from_the_parent() {
        let named = |v: Value| case_name(&v);
        assert_eq!(
            named(json!({"metadata": {"name": "a", "namespace": "n"}})),
            "n-a"
        );
        assert_eq!(
            named(json!({"metadata": {"name": "cluster-wide"}})),
            "cluster-wide"
        );
        assert_eq!(
            named(json!({"metadata": {"name": "../x", "namespace": "n"}})),
            "n-.._x"
        );
        assert_eq!(named(json!({})), "parent");
    }
}
