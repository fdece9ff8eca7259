//! Jobs as children: what an observed Job says, and asking for it again
//! without touching what cannot change.
//!
//! Reconcilers that run one-off work (a backup, a schema change, a
//! restore) own a `batch/v1` Job and read its outcome back from the
//! observed copy. Two things every such reconciler gets wrong once: a
//! Job's Pod template is immutable, so the desired Job must carry the
//! template it was created with, and the Job controller adds labels to
//! that template that name the Job's uid, which must not be applied back.

use serde_json::Value;

/// What an observed Job says, in the order the Job controller decides it:
/// one succeeded Pod is success, whatever failed before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Not observed: not made yet, or gone.
    Absent,
    /// Observed, neither succeeded nor failed yet.
    Running,
    /// `status.succeeded` ≥ 1.
    Succeeded,
    /// A `Failed=True` condition, with its reason and message
    /// (`BackoffLimitExceeded: Job has reached the specified backoff
    /// limit`), or the reason alone when the message is empty.
    Failed(String),
}

impl JobState {
    /// The state of `job` (an observed Job as JSON), `Absent` for none.
    pub fn of(job: Option<&Value>) -> JobState {
        let Some(job) = job else {
            return JobState::Absent;
        };
        if job["status"]["succeeded"].as_i64().unwrap_or(0) >= 1 {
            return JobState::Succeeded;
        }
        let failed = job["status"]["conditions"].as_array().and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "Failed" && c["status"] == "True")
        });
        match failed {
            Some(c) => {
                let reason = c["reason"].as_str().unwrap_or("Failed");
                match c["message"].as_str().unwrap_or_default() {
                    "" => JobState::Failed(reason.to_string()),
                    message => JobState::Failed(format!("{reason}: {message}")),
                }
            }
            None => JobState::Running,
        }
    }
}

/// The labels the Job controller puts on a Job's Pod template; they name
/// the Job's uid, so applying them to a Job recreated under the same name
/// (a stale cache during deletion) would be refused, and they are not the
/// reconciler's to own.
pub const JOB_CONTROLLER_LABELS: [&str; 4] = [
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
];

/// `desired` with the Pod template of the `observed` Job, if there is one:
/// the template is immutable, so a Job is asked for as it was made, even
/// when what it would be made with today (an image, a label) has changed.
/// The Job controller's labels ([`JOB_CONTROLLER_LABELS`]) are left out.
pub fn keep_template(observed: Option<&Value>, mut desired: Value) -> Value {
    let Some(mut template) = observed
        .map(|job| job["spec"]["template"].clone())
        .filter(Value::is_object)
    else {
        return desired;
    };
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        for label in JOB_CONTROLLER_LABELS {
            labels.remove(label);
        }
    }
    desired["spec"]["template"] = template;
    desired
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": status})
    }

    #[test]
    fn states_in_the_job_controllers_order() {
        assert_eq!(JobState::of(None), JobState::Absent);
        assert_eq!(JobState::of(Some(&job(json!({})))), JobState::Running);
        assert_eq!(
            JobState::of(Some(&job(json!({"active": 1, "failed": 1})))),
            JobState::Running,
            "a failed Pod retried is still running"
        );
        assert_eq!(
            JobState::of(Some(&job(json!({"succeeded": 1})))),
            JobState::Succeeded
        );
        let failed = json!({"conditions": [
            {"type": "Complete", "status": "False"},
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"},
        ]});
        assert_eq!(
            JobState::of(Some(&job(failed.clone()))),
            JobState::Failed(
                "DeadlineExceeded: Job was active longer than specified deadline".into()
            )
        );
        let mut succeeded_after_all = failed;
        succeeded_after_all["succeeded"] = json!(1);
        assert_eq!(
            JobState::of(Some(&job(succeeded_after_all))),
            JobState::Succeeded
        );
        let bare = json!({"conditions": [{"type": "Failed", "status": "True"}]});
        assert_eq!(
            JobState::of(Some(&job(bare))),
            JobState::Failed("Failed".into())
        );
        let not_yet = json!({"conditions": [{"type": "Failed", "status": "False", "reason": "X"}]});
        assert_eq!(JobState::of(Some(&job(not_yet))), JobState::Running);
    }

    #[test]
    fn an_observed_job_keeps_its_template_without_the_controllers_labels() {
        let observed = json!({"spec": {"template": {
            "metadata": {"labels": {"app": "old", "controller-uid": "u", "job-name": "j",
                                    "batch.kubernetes.io/controller-uid": "u",
                                    "batch.kubernetes.io/job-name": "j"}},
            "spec": {"containers": [{"image": "old"}]}
        }}});
        let desired = json!({"metadata": {"name": "j", "labels": {"app": "new"}},
                             "spec": {"backoffLimit": 2, "template": {"spec": {"containers": [{"image": "new"}]}}}});
        let kept = keep_template(Some(&observed), desired.clone());
        assert_eq!(
            kept["spec"]["template"],
            json!({"metadata": {"labels": {"app": "old"}}, "spec": {"containers": [{"image": "old"}]}})
        );
        assert_eq!(kept["spec"]["backoffLimit"], 2);
        assert_eq!(kept["metadata"], desired["metadata"]);
    }

    #[test]
    fn without_an_observed_template_the_desired_one_stays() {
        let desired = json!({"spec": {"template": {"spec": {"containers": []}}}});
        assert_eq!(keep_template(None, desired.clone()), desired);
        let no_template = json!({"spec": {}});
        assert_eq!(keep_template(Some(&no_template), desired.clone()), desired);
    }
}
