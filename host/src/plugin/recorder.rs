//! Recording a plugin's real traffic (`operon plugins record`): what a
//! running host hands a plugin, kept so that `operon test` can replay it
//! offline as golden cases and a candidate build can be judged on what the
//! cluster really sends, not only on hand-written fixtures.
//!
//! One [`Recorder`] per plugin, shared by the controllers of all its
//! revisions (as the shadow slot is), so a swap does not end a recording.
//! The flow:
//!
//! 1. `operon plugins record` asks the host to [`start`](Recorder::start)
//!    recording the next N reconciles;
//! 2. while it records, each reconcile gets a [`Tape`]: the parent and
//!    observed children as handed over, every object `cluster.get/list`
//!    returned during the call, and the wall clock, fixed for the call so
//!    that the case can hand the plugin the same time;
//! 3. the controller turns the tape into a [`Record`] with the answer, in
//!    the words `operon test` compares, after [`Record::redact`] took the
//!    Secrets' values out (see [`super::redact`]);
//! 4. the client fetches the [`records`](Recorder::records), writes the
//!    cases, and [`stop`](Recorder::stop)s the recording.
//!
//! # Guarantees
//! - Off by default: a reconcile then costs one atomic load, nothing is
//!   copied or kept.
//! - Bounded: at most [`MAX_COUNT`] records, [`MAX_BYTES`] of them in all;
//!   a record that would pass the bytes bound ends the recording
//!   ([`Progress::full`]). Recording stops by itself once N are kept.
//! - No Secret value is kept (step 3 runs before [`Recorder::keep`]).
//!
//! # Caveats
//! - While recording, the plugin's wall clock stands still during each
//!   call (it reads the time the call started): the price of a case that
//!   replays exactly.
//! - Workers record concurrently: the N kept are the first N to finish.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CallContext, redact};
use crate::answer_diff::identity;
use crate::contract::cluster::{ClusterReader, ReadError};
use crate::contract::selector::Selector;
use crate::contract::{ObjectSet, Request};

/// The most reconciles one recording keeps.
pub const MAX_COUNT: usize = 500;

/// The most bytes (as JSON) the records of one plugin take.
pub const MAX_BYTES: usize = 64 << 20;

/// One plugin's recorder: off until asked.
#[derive(Default)]
pub struct Recorder {
    /// Whether reconciles are taped now: read on every reconcile, so it is
    /// apart from the state behind the lock.
    on: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// How many records were asked for; 0 when no recording was asked.
    wanted: usize,
    records: Vec<Record>,
    bytes: usize,
    full: bool,
}

/// How far a recording is, as `operon plugins record` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub recorded: usize,
    pub wanted: usize,
    /// Reconciles are still being taped.
    pub recording: bool,
    /// The recording ended at [`MAX_BYTES`], short of `wanted`.
    pub full: bool,
}

impl Recorder {
    /// Starts recording the next `count` reconciles (at least 1, at most
    /// [`MAX_COUNT`]), unless a recording was asked already: then it goes
    /// on (or stays done) as it was, and this says how far it is.
    pub fn start(&self, count: usize) -> Progress {
        let mut s = self.lock();
        if s.wanted == 0 {
            *s = State {
                wanted: count.clamp(1, MAX_COUNT),
                ..State::default()
            };
            self.on.store(true, Ordering::Release);
        }
        self.progress_of(&s)
    }

    /// Whether reconciles are being taped now.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    pub fn progress(&self) -> Progress {
        self.progress_of(&self.lock())
    }

    /// The records kept so far, oldest first.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    /// Ends the recording and forgets its records; how far it had come.
    pub fn stop(&self) -> Progress {
        let mut s = self.lock();
        self.on.store(false, Ordering::Release);
        let progress = self.progress_of(&s);
        *s = State::default();
        progress
    }

    /// A tape for one reconcile of `subject`, `None` when not recording.
    pub fn tape(
        &self,
        subject: &str,
        parent: &Value,
        observed: &[Value],
        finalizing: bool,
    ) -> Option<Tape> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        Some(Tape {
            subject: subject.to_string(),
            parent: parent.clone(),
            observed: observed.to_vec(),
            finalizing,
            now: SystemTime::now(),
            reads: Arc::default(),
        })
    }

    /// Keeps a finished record, if the recording still wants one; the
    /// recording ends when it has all it wanted or its bytes are spent.
    pub fn keep(&self, record: Record) {
        let mut s = self.lock();
        if !self.on.load(Ordering::Acquire) || s.records.len() >= s.wanted {
            return;
        }
        let bytes = serde_json::to_vec(&record).map_or(usize::MAX, |b| b.len());
        if s.bytes.saturating_add(bytes) > MAX_BYTES {
            s.full = true;
            self.on.store(false, Ordering::Release);
            return;
        }
        s.bytes += bytes;
        s.records.push(record);
        if s.records.len() >= s.wanted {
            self.on.store(false, Ordering::Release);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn progress_of(&self, s: &State) -> Progress {
        Progress {
            recorded: s.records.len(),
            wanted: s.wanted,
            recording: self.on.load(Ordering::Acquire),
            full: s.full,
        }
    }
}

/// What one reconcile is handed, taped as it happens.
pub struct Tape {
    /// `namespace/name` of the parent.
    pub subject: String,
    parent: Value,
    observed: Vec<Value>,
    finalizing: bool,
    /// The plugin's wall clock during the call.
    pub now: SystemTime,
    /// What `cluster.get/list` returned, in call order.
    reads: Arc<Mutex<Vec<Value>>>,
}

impl Tape {
    /// `ctx` with its reads taped and its clock fixed at [`Tape::now`].
    pub fn context(&self, ctx: CallContext) -> CallContext {
        CallContext {
            cluster: Arc::new(Taped {
                inner: ctx.cluster.clone(),
                reads: self.reads.clone(),
            }),
            fixed_time: Some(self.now),
            ..ctx
        }
    }

    /// The record of this call, without its answer (`null`) and not yet
    /// redacted. The related objects are what was read, each once, less
    /// the observed children (a case holds those already).
    pub fn into_record(self, config: &[(String, String)], revision: &str) -> Record {
        let mut seen: BTreeSet<String> = self.observed.iter().map(identity).collect();
        let reads = std::mem::take(&mut *self.reads.lock().unwrap_or_else(PoisonError::into_inner));
        let related = reads
            .into_iter()
            .filter(|o| seen.insert(identity(o)))
            .collect();
        Record {
            parent: self.parent,
            observed: self.observed,
            related,
            config: config.iter().cloned().collect(),
            now: rfc3339(self.now),
            finalizing: self.finalizing,
            answer: Value::Null,
            redacted: Vec::new(),
            revision: revision.to_string(),
        }
    }
}

fn rfc3339(at: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(at)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The host's reader, with what it returns copied to the tape.
struct Taped {
    inner: Arc<dyn ClusterReader>,
    reads: Arc<Mutex<Vec<Value>>>,
}

impl Taped {
    fn tape(&self, objects: impl IntoIterator<Item = Value>) {
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(objects);
    }
}

impl ClusterReader for Taped {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ReadError> {
        let found = self.inner.get(api_version, kind, namespace, name)?;
        self.tape(found.clone());
        Ok(found)
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<Value>, ReadError> {
        let found = self.inner.list(api_version, kind, namespace, selector)?;
        self.tape(found.iter().cloned());
        Ok(found)
    }
}

/// One recorded reconcile: what the plugin was handed and what it answered,
/// as the admin endpoint serves it and a golden case holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The parent as the plugin saw it.
    pub parent: Value,
    /// The children the host observed.
    pub observed: Vec<Value>,
    /// The other objects the plugin read during the call.
    pub related: Vec<Value>,
    pub config: BTreeMap<String, String>,
    /// The plugin's wall clock, RFC 3339.
    pub now: String,
    pub finalizing: bool,
    /// The answer as `operon test` compares it: the outcome as `operon
    /// reconcile` prints it, or `{"error": {"<kind>": "<message>"}}`.
    pub answer: Value,
    /// `namespace/name` of the Secrets whose values were redacted. When
    /// any was, the answer is the same revision's to the redacted input
    /// (called once more), so that the case replays and holds no value of
    /// a Secret, not even one the plugin copied into its answer.
    pub redacted: Vec<String>,
    /// The short digest of the revision that answered.
    pub revision: String,
}

impl Record {
    /// Takes the Secrets' values out of the parent, the observed and the
    /// related objects ([`redact::secrets`]), noting which.
    pub fn redact(&mut self) {
        let objects = std::iter::once(&mut self.parent)
            .chain(&mut self.observed)
            .chain(&mut self.related);
        self.redacted = redact::secrets(objects);
    }

    /// The request the record hands the plugin.
    pub fn request(&self) -> Request {
        let mut request = Request::new(
            self.parent.to_string(),
            self.observed.iter().map(Value::to_string).collect(),
            self.config.clone().into_iter().collect(),
        );
        request.finalizing = self.finalizing;
        request
    }

    /// The cluster the record's reads see: the related objects and the
    /// observed children, as `operon test` builds it.
    pub fn cluster(&self) -> ObjectSet {
        let mut cluster = ObjectSet::new();
        for object in self.related.iter().chain(&self.observed) {
            // The host's cache gave them whole; one that is not is left out.
            let _ = cluster.insert(object.clone());
        }
        cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tape(recorder: &Recorder, name: &str) -> Option<Tape> {
        let parent = json!({"apiVersion": "x/v1", "kind": "P", "metadata": {"name": name, "namespace": "n"}});
        recorder.tape(&format!("n/{name}"), &parent, &[], false)
    }

    fn record(name: &str) -> Record {
        let recorder = Recorder::default();
        recorder.start(1);
        tape(&recorder, name).unwrap().into_record(&[], "abc")
    }

    #[test]
    fn off_until_asked_and_done_after_the_count() {
        let recorder = Recorder::default();
        assert!(tape(&recorder, "a").is_none(), "nothing taped when off");
        recorder.keep(record("a"));
        assert_eq!(recorder.progress().recorded, 0, "nothing kept when off");

        let started = recorder.start(2);
        assert_eq!(
            (started.recorded, started.wanted, started.recording),
            (0, 2, true)
        );
        for name in ["a", "b", "c"] {
            if let Some(t) = tape(&recorder, name) {
                recorder.keep(t.into_record(&[], "abc"));
            }
        }
        let done = recorder.progress();
        assert_eq!((done.recorded, done.recording), (2, false));
        assert!(tape(&recorder, "d").is_none(), "done: no more tapes");
        // Asking again returns what was recorded, without starting over.
        assert_eq!(recorder.start(5), done);
        let names: Vec<_> = recorder
            .records()
            .iter()
            .map(|r| r.parent["metadata"]["name"].clone())
            .collect();
        assert_eq!(names, [json!("a"), json!("b")]);
        assert_eq!(recorder.stop().recorded, 2);
        assert_eq!(
            recorder.progress(),
            Progress {
                recorded: 0,
                wanted: 0,
                recording: false,
                full: false
            }
        );
        assert!(recorder.records().is_empty());
    }

    #[test]
    fn the_count_is_bounded() {
        let recorder = Recorder::default();
        assert_eq!(recorder.start(usize::MAX).wanted, MAX_COUNT);
        recorder.stop();
        assert_eq!(recorder.start(0).wanted, 1);
    }

    #[test]
    fn reads_are_taped_once_less_the_observed_children() {
        let recorder = Recorder::default();
        recorder.start(1);
        let object = |kind: &str, name: &str| json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "n"}});
        let parent = object("P", "p");
        let child = object("ConfigMap", "child");
        let tape = recorder
            .tape("n/p", &parent, std::slice::from_ref(&child), false)
            .unwrap();
        let mut cluster = ObjectSet::new();
        for o in [
            child.clone(),
            object("ConfigMap", "other"),
            object("Secret", "s"),
        ] {
            cluster.insert(o).unwrap();
        }
        let ctx = tape.context(CallContext {
            cluster: Arc::new(cluster),
            ..CallContext::offline("n/p")
        });
        assert_eq!(ctx.fixed_time, Some(tape.now));
        let all = Selector::everything();
        assert_eq!(
            ctx.cluster
                .list("v1", "ConfigMap", Some("n"), &all)
                .unwrap()
                .len(),
            2
        );
        assert!(
            ctx.cluster
                .get("v1", "Secret", Some("n"), "s")
                .unwrap()
                .is_some()
        );
        assert!(
            ctx.cluster
                .get("v1", "Secret", Some("n"), "gone")
                .unwrap()
                .is_none()
        );
        ctx.cluster
            .list("v1", "ConfigMap", Some("n"), &all)
            .unwrap();
        let record = tape.into_record(&[("k".into(), "v".into())], "abc");
        assert_eq!(record.observed, [child]);
        assert_eq!(
            record.related,
            [object("ConfigMap", "other"), object("Secret", "s")]
        );
        assert_eq!(record.config, BTreeMap::from([("k".into(), "v".into())]));
        assert!(record.now.ends_with('Z'), "{}", record.now);
    }

    #[test]
    fn redaction_covers_parent_observed_and_related() {
        let secret = |name: &str| {
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "n"}, "data": {"k": "c2VjcmV0"}})
        };
        let mut record = record("p");
        record.parent = secret("parent");
        record.observed = vec![secret("child")];
        record.related = vec![secret("read")];
        record.redact();
        assert_eq!(record.redacted, ["n/parent", "n/child", "n/read"]);
        assert!(!serde_json::to_string(&record).unwrap().contains("c2VjcmV0"));
    }
}
