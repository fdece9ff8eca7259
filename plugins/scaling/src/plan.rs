//! One reconcile of a policy: check it, read the target and its Pods,
//! decide (in [`crate::replicas`] and [`crate::storage`]), then act
//! (`Enforce`) or only advise (`Recommend`), and write the status that
//! carries the plugin's memory to the next call.
//!
//! When to look again: a change of the target or of one of its instance
//! Pods wakes the policy (the registration maps them), a wait that ends
//! (cooldown, stabilization window) requeues it for that moment, and in any
//! case it looks every `spec.syncPeriodSeconds`, like the HPA's sync
//! period: an exporter may update figures without anything else changing,
//! and the host's `map-related` calls may not be allowed to read the
//! policies a Pod concerns (see README.md).

use std::time::Duration;

use operon_sdk::conditions::{Condition, find_condition};
use operon_sdk::time::{format_rfc3339, parse_rfc3339};
use operon_sdk::{Context, Error, Event, ObjectRef, Patch, Request, Response};
use serde_json::{Value, json};

use crate::figures::{self, Instance};
use crate::history::History;
use crate::policy::{Mode, Policy, PolicySpec};
use crate::status::{self, ACTIVE, BLOCKED, LIMITED, PolicyStatus, Recommendation, State};
use crate::{API_VERSION, CLUSTER_KIND, KIND, replicas, storage, validate};

/// Reasons of the `Active` condition (and of `Blocked` when inactive).
pub const INVALID: &str = "InvalidPolicy";
pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
pub const TARGET_CONFLICT: &str = "TargetConflict";
pub const FIGURES_READ: &str = "FiguresRead";
pub const FIGURES_UNAVAILABLE: &str = "FiguresUnavailable";
/// Reasons of `Blocked` when the cluster must not be changed now.
pub const TARGET_PAUSED: &str = "TargetPaused";
pub const TARGET_SHUT_DOWN: &str = "TargetShutDown";
pub const TARGET_UPGRADING: &str = "TargetUpgrading";

/// Reconciles `req` at `now` (seconds since the epoch).
pub fn reconcile_at(ctx: &Context, req: &Request, now: i64) -> Result<Response, Error> {
    let prev: PolicyStatus = req.status_or_default();
    let mut out = Outcome {
        conditions: req.conditions(),
        generation: req.generation(),
        now,
        status: PolicyStatus {
            last_scale_time: prev.last_scale_time.clone(),
            last_storage_grow_time: prev.last_storage_grow_time.clone(),
            recent_recommendations: prev.recent_recommendations.clone(),
            target_generation: prev.target_generation,
            ..PolicyStatus::default()
        },
        response: Response::new(),
    };
    let spec: PolicySpec = req.spec()?;
    let policy = match validate::policy(&spec) {
        Ok(p) => p,
        Err(why) => return Ok(out.inactive(&prev, INVALID, why, None)),
    };
    let sync = Some(policy.sync_period);
    let ns = req.namespace();
    let cluster_desc = match ns {
        Some(ns) => format!("{CLUSTER_KIND} {ns}/{}", policy.target),
        None => format!("{CLUSTER_KIND} {}", policy.target),
    };
    let Some(cluster) = ctx.get_json(API_VERSION, CLUSTER_KIND, ns, &policy.target)? else {
        let why = format!("{cluster_desc} (spec.targetRef) does not exist");
        return Ok(out.inactive(&prev, TARGET_NOT_FOUND, why, sync));
    };
    if let Some(why) = rival(ctx, req, &policy, &cluster_desc)? {
        return Ok(out.inactive(&prev, TARGET_CONFLICT, why, sync));
    }
    let generation = cluster["metadata"]["generation"].as_i64();
    if policy.mode == Mode::Enforce && in_flight(&prev, generation, now) {
        // Leave the status as it is and look again in a moment.
        return Ok(Response::new().requeue_after(Duration::from_secs(1)));
    }
    let size_text = cluster["spec"]["storage"]["size"].as_str();
    let current_size = match validate::against_target(&policy, &cluster_desc, size_text) {
        Ok(size) => size,
        Err(why) => return Ok(out.inactive(&prev, INVALID, why, sync)),
    };
    let current = cluster["spec"]["instances"]
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(1);
    let selector = cluster["status"]["selector"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| figures::default_selector(&policy.target), str::to_string);
    let pods = ctx.list_json("v1", "Pod", ns, Some(&selector))?;
    let instances = figures::instances(&pods);

    let target = Target {
        hold: hold(&cluster, &cluster_desc),
        generation,
        reference: ObjectRef::new(API_VERSION, CLUSTER_KIND, ns, policy.target.clone()),
        desc: cluster_desc,
        current,
        size_text: size_text.map(str::to_string),
    };
    out.decide(&policy, &prev, &target, current_size, &instances);
    Ok(out.finish())
}

/// Two policies setting the same figure of one cluster would undo each
/// other's changes at every turn. Of policies that overlap (both manage
/// replicas, or both storage), the first by name acts; the others say
/// which one does. One managing replicas and another storage may share a
/// cluster.
fn rival(
    ctx: &Context,
    req: &Request,
    policy: &Policy,
    cluster_desc: &str,
) -> Result<Option<String>, Error> {
    let me = req.name();
    let others = ctx.list_json(API_VERSION, KIND, req.namespace(), None)?;
    let overlap = |p: &Value| {
        let parts = [
            ("replicas", policy.replicas.is_some()),
            ("storage", policy.storage.is_some()),
        ];
        parts
            .into_iter()
            .find(|(part, mine)| *mine && !p["spec"][part].is_null())
            .map(|(part, _)| part)
    };
    let first = others
        .iter()
        .filter(|p| p["spec"]["targetRef"]["name"].as_str() == Some(policy.target.as_str()))
        .filter_map(|p| Some((p["metadata"]["name"].as_str()?, overlap(p)?)))
        .filter(|(name, _)| *name < me)
        .min();
    Ok(first.map(|(name, part)| {
        format!(
            "{KIND} {name} also manages the {part} of {cluster_desc}: of overlapping policies the first by name acts"
        )
    }))
}

/// How long a change may take to show in the host's cache before the
/// policy stops waiting for it (a patch that changed nothing, e.g. because
/// someone else set the same value, never shows).
pub const IN_FLIGHT_SECS: i64 = 10;

/// Whether the policy's last change has not reached the host's cache yet:
/// the cluster still has the generation that change was made from. The
/// policy's own status update can bring it round before the cluster's
/// watch event arrives, and deciding on the stale cluster would make the
/// same change again (a second event, a new scale time).
fn in_flight(prev: &PolicyStatus, generation: Option<i64>, now: i64) -> bool {
    let last = [&prev.last_scale_time, &prev.last_storage_grow_time]
        .into_iter()
        .filter_map(|t| t.as_deref().and_then(parse_rfc3339))
        .max();
    generation.is_some()
        && prev.target_generation == generation
        && last.is_some_and(|t| now - t < IN_FLIGHT_SECS)
}

/// The target cluster as a decision needs it.
struct Target {
    /// Its `metadata.generation`, recorded with each change.
    generation: Option<i64>,
    reference: ObjectRef,
    desc: String,
    current: i32,
    size_text: Option<String>,
    /// Why the cluster must not be changed now, if it must not.
    hold: Option<State>,
}

/// A cluster that is paused, shut down or mid-upgrade is left alone: the
/// Postgres plugin would not apply a change now (paused), or a change
/// would fight what it is doing (a major upgrade stops every instance).
fn hold(cluster: &Value, name: &str) -> Option<State> {
    if cluster["spec"]["paused"] == true {
        return Some(State::yes(
            TARGET_PAUSED,
            format!("{name} is paused: nothing is changed until it resumes"),
        ));
    }
    if cluster["spec"]["shutdown"] == true {
        return Some(State::yes(
            TARGET_SHUT_DOWN,
            format!("{name} is shut down: nothing is changed until it starts"),
        ));
    }
    if cluster["status"]["upgrade"].is_object() {
        return Some(State::yes(
            TARGET_UPGRADING,
            format!("{name} is in a major upgrade: nothing is changed until it ends"),
        ));
    }
    None
}

/// The answer being built.
struct Outcome {
    conditions: Vec<Condition>,
    generation: Option<i64>,
    now: i64,
    status: PolicyStatus,
    response: Response,
}

impl Outcome {
    fn set(&mut self, type_: &str, state: State) {
        status::set(
            &mut self.conditions,
            type_,
            state,
            self.now,
            self.generation,
        );
    }

    /// A policy that cannot act: `Active=False` and `Blocked=True` with the
    /// reason, no patches, a Warning when the reason is new. The memory
    /// (times, history) is kept for when it is fixed. `sync`: look again
    /// after that many seconds (a missing target may appear; a policy
    /// refused for its spec waits for an edit).
    fn inactive(
        mut self,
        prev: &PolicyStatus,
        reason: &str,
        why: String,
        sync: Option<i64>,
    ) -> Response {
        if let Some(secs) = sync {
            self.requeue_at(self.now + secs);
        }
        let was = find_condition(&prev.conditions, ACTIVE);
        if was.is_none_or(|c| c.reason != reason || c.message != why) {
            self.response = self.response.event(Event::warning(reason, why.clone()));
        }
        self.set(ACTIVE, State::no(reason, why.clone()));
        self.set(
            LIMITED,
            State::no("Inactive", "the policy is inactive (see Active)"),
        );
        self.set(BLOCKED, State::yes(reason, why));
        self.finish()
    }

    fn decide(
        &mut self,
        policy: &Policy,
        prev: &PolicyStatus,
        target: &Target,
        current_size: Option<u128>,
        instances: &[Instance],
    ) {
        let now = self.now;
        let parse = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339);
        let rep = policy.replicas.as_ref().map(|r| {
            replicas::decide(
                r,
                target.current,
                instances,
                parse(&prev.last_scale_time),
                History::from_samples(&prev.recent_recommendations),
                now,
            )
        });
        let sto = match (&policy.storage, current_size, &target.size_text) {
            (Some(s), Some(size), Some(text)) => Some(storage::decide(
                s,
                size,
                text,
                instances,
                parse(&prev.last_storage_grow_time),
                now,
            )),
            _ => None,
        };

        self.status.current_instances = Some(target.current);
        self.status.current_storage_size = target.size_text.clone();
        let recommendation = Recommendation {
            instances: rep
                .as_ref()
                .filter(|d| d.reading.is_some() || d.recommended != target.current)
                .map(|d| d.recommended),
            storage_size: sto.as_ref().and_then(|d| d.grow_to.clone()),
        };
        self.status.recommendation =
            (recommendation != Recommendation::default()).then_some(recommendation);
        self.status.metric = rep.as_ref().and_then(|d| d.reading.clone());
        self.status.disk_used_percent = sto.as_ref().and_then(|d| d.used_percent);
        if let Some(d) = &rep {
            self.status.recent_recommendations = d.history.to_samples();
        }

        // What differs from the cluster: the recommendation proper, and
        // what of it may be applied now.
        let scale_to = rep
            .as_ref()
            .filter(|d| d.recommended != target.current)
            .map(|d| (d.recommended, d.blocked.is_none()));
        let grow_to = sto.as_ref().and_then(|d| Some((d.grow_to.clone()?, d.act)));
        match (policy.mode, &target.hold) {
            (Mode::Enforce, None) => {
                if let (Some((to, true)), Some(d)) = (scale_to, &rep) {
                    self.scale(target, to, &d.explanation);
                }
                if let (Some((to, true)), Some(d)) = (&grow_to, &sto) {
                    self.grow(target, to, &d.explanation);
                }
            }
            (Mode::Recommend, _) => {
                let changed = prev.recommendation != self.status.recommendation;
                if changed && (scale_to.is_some() || grow_to.is_some()) {
                    self.recommended(
                        target,
                        scale_to.map(|(n, _)| n),
                        grow_to.as_ref().map(|(s, _)| s.as_str()),
                    );
                }
            }
            (Mode::Enforce, Some(_)) => {}
        }
        self.conditions_for(policy, target, rep.as_ref(), sto.as_ref());
    }

    fn scale(&mut self, target: &Target, to: i32, explanation: &str) {
        let from = target.current;
        self.response = std::mem::take(&mut self.response)
            .patch(
                Patch::merge(target.reference.clone(), json!({"spec": {"replicas": to}}))
                    .subresource("scale"),
            )
            .event(Event::normal(
                if to > from { "ScaledUp" } else { "ScaledDown" },
                format!("{}: instances {from} → {to} ({explanation})", target.desc),
            ));
        self.status.last_scale_time = Some(format_rfc3339(self.now));
        self.status.target_generation = target.generation;
    }

    fn grow(&mut self, target: &Target, to: &str, explanation: &str) {
        let from = target.size_text.as_deref().unwrap_or_default();
        self.response = std::mem::take(&mut self.response)
            .patch(Patch::merge(
                target.reference.clone(),
                json!({"spec": {"storage": {"size": to}}}),
            ))
            .event(Event::normal(
                "StorageGrown",
                format!("{}: storage {from} → {to} ({explanation})", target.desc),
            ));
        self.status.last_storage_grow_time = Some(format_rfc3339(self.now));
        self.status.target_generation = target.generation;
    }

    fn recommended(&mut self, target: &Target, scale_to: Option<i32>, grow_to: Option<&str>) {
        let mut parts = Vec::new();
        if let Some(n) = scale_to {
            parts.push(format!("{n} instances (now {})", target.current));
        }
        if let Some(size) = grow_to {
            parts.push(format!(
                "storage {size} (now {})",
                target.size_text.as_deref().unwrap_or_default()
            ));
        }
        self.response = std::mem::take(&mut self.response).event(Event::normal(
            "Recommended",
            format!(
                "{}: recommends {} (mode Recommend: nothing is changed)",
                target.desc,
                parts.join(" and ")
            ),
        ));
    }

    fn conditions_for(
        &mut self,
        policy: &Policy,
        target: &Target,
        rep: Option<&replicas::Decision>,
        sto: Option<&storage::Decision>,
    ) {
        let mut read = Vec::new();
        let mut notes = Vec::new();
        if let Some(d) = rep {
            if d.reading.is_some() {
                read.push(d.explanation.clone());
            }
            notes.extend(d.notes.iter().map(|n| format!("replicas: {n}")));
        }
        if let Some(d) = sto {
            if d.used_percent.is_some() {
                read.push(d.explanation.clone());
            }
            notes.extend(d.notes.iter().map(|n| format!("storage: {n}")));
        }
        let mode = format!("mode {}", policy.mode.name());
        let active = if read.is_empty() {
            State::no(
                FIGURES_UNAVAILABLE,
                format!(
                    "{mode}; no figures to decide on for {}: {}",
                    target.desc,
                    notes.join("; ")
                ),
            )
        } else {
            let mut message = format!("{mode}; {}", read.join("; "));
            if !notes.is_empty() {
                message.push_str(&format!(" ({})", notes.join("; ")));
            }
            State::yes(FIGURES_READ, message)
        };
        self.set(ACTIVE, active);

        let limits: Vec<&State> = [
            rep.and_then(|d| d.limited.as_ref()),
            sto.and_then(|d| d.limited.as_ref()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let limited = join(&limits).unwrap_or_else(|| {
            State::no(
                "WithinBounds",
                "the recommendation is within the policy's bounds",
            )
        });
        self.set(LIMITED, limited);

        let blocks: Vec<&(State, Option<i64>)> = [
            rep.and_then(|d| d.blocked.as_ref()),
            sto.and_then(|d| d.blocked.as_ref()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let blocked = match &target.hold {
            Some(hold) => hold.clone(),
            None => join(&blocks.iter().map(|(s, _)| s).collect::<Vec<_>>()).unwrap_or_else(|| {
                State::no("NotBlocked", "nothing holds the recommendation back")
            }),
        };
        self.set(BLOCKED, blocked);
        // Come back when a wait ends (no event would bring the policy
        // round at that moment), and at the latest after the sync period.
        let waits = blocks.iter().filter_map(|(_, u)| *u);
        if let Some(at) = waits.chain([self.now + policy.sync_period]).min() {
            self.requeue_at(at);
        }
    }

    fn requeue_at(&mut self, at: i64) {
        let secs = u64::try_from(at - self.now).unwrap_or(0).max(1);
        self.response = std::mem::take(&mut self.response).requeue_after(Duration::from_secs(secs));
    }

    fn finish(mut self) -> Response {
        self.status.conditions = self.conditions;
        self.response.status(self.status)
    }
}

/// Several states of one condition as one: the first's reason, every
/// message.
fn join(states: &[&State]) -> Option<State> {
    let first = states.first()?;
    Some(State {
        status: first.status,
        reason: first.reason.clone(),
        message: states
            .iter()
            .map(|s| s.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    })
}
