//! `operon plugins record` against the real control plane: the reconciles
//! a running host hands a plugin, saved as golden cases, then replayed
//! offline by `operon test` with the same build; Secrets' values never
//! reach the cases.

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch};
use kube::api::{PatchParams, PostParams};
use operon_test_support::{TestEnv, wait_until};
use serde_json::json;

use common::host::{Host, create_memcached, get};

/// A running `operon plugins record`, past its first progress line: what
/// the plugin reconciles from now on is recorded.
struct Recording {
    child: Child,
    progress: BufReader<std::process::ChildStderr>,
    first: String,
}

impl Recording {
    fn start(host: &Host, plugin: &str, dir: &Path, count: u32) -> Recording {
        let mut child = Command::new(env!("CARGO_BIN_EXE_operon"))
            .args(["plugins", "--admin-addr", &host.admin, "record", plugin])
            .arg(dir)
            .args(["--count", &count.to_string(), "--timeout-s", "120"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting operon plugins record");
        let mut progress = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        progress.read_line(&mut first).unwrap();
        assert_eq!(first.trim(), format!("recorded 0/{count}"));
        Recording {
            child,
            progress,
            first,
        }
    }

    /// Waits for the command; the case directories, sorted.
    fn finish(mut self, dir: &Path, count: u32) -> Vec<PathBuf> {
        let mut rest = String::new();
        self.progress.read_to_string(&mut rest).unwrap();
        let out = self.child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let said = format!("{}{rest}{stdout}", self.first);
        assert!(out.status.success(), "operon plugins record: {said}");
        assert!(
            rest.contains(&format!("recorded {count}/{count}")),
            "{said}"
        );
        let mut dirs: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        assert_eq!(dirs.len(), count as usize, "{dirs:?}\n{said}");
        dirs
    }
}

/// `operon test` of a component on the cases in `dir`: its report.
fn replay(package: &str, dir: &Path) -> String {
    let test = Command::new(env!("CARGO_BIN_EXE_operon"))
        .arg("test")
        .arg(common::component(package))
        .arg(dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&test.stdout).to_string();
    assert!(
        test.status.success(),
        "operon test: {report}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    report
}

#[tokio::test]
async fn recorded_reconciles_replay_offline_with_the_same_build() {
    let env = TestEnv::new().await;
    let host = Host::start(&env, &["rust-memcached"]);
    host.ready().await;
    let cases = common::temp_dir(&format!("recorded-{}", env.namespace));

    let recording = Recording::start(&host, "memcached", &cases, 3);
    for name in ["a", "b", "c"] {
        create_memcached(&env, name, 2).await;
    }
    let dirs = recording.finish(&cases, 3);
    let prefix = format!("{}-", env.namespace);
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy();
        assert!(name.starts_with(&prefix), "{name}");
        for file in ["parent.yaml", "case.yaml", "expected.yaml"] {
            assert!(dir.join(file).is_file(), "{name}/{file}");
        }
    }

    // The recording is over: the host keeps nothing more.
    let (code, body) = get(&host.admin, "/plugins/memcached/record").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["records"], json!([]), "{body}");

    // A plugin the host does not run is named.
    let out = Command::new(env!("CARGO_BIN_EXE_operon"))
        .args(["plugins", "--admin-addr", &host.admin, "record", "nope"])
        .arg(&cases)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("recording plugin nope: no plugin named nope is loaded"),
        "{stderr}"
    );

    let report = replay("rust-memcached", &cases);
    assert!(
        report.contains("3 passed, 0 failed (3 cases, plugin memcached)"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&cases);
}

/// The postgres plugin observes the Secrets it owns (its passwords): the
/// recorded case holds their keys, never their values, and still replays.
#[tokio::test]
async fn observed_secrets_are_redacted_and_the_case_still_replays() {
    let env = TestEnv::new().await;
    let host = Host::start(&env, &["postgres"]);
    host.ready().await;
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "postgres.operon.dev",
        "v1alpha1",
        "PostgresCluster",
    ));
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &ar);
    let parent: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgres.operon.dev/v1alpha1", "kind": "PostgresCluster",
        "metadata": {"name": "pg", "namespace": env.namespace},
        "spec": {"version": 16, "instances": 1, "storage": {"size": "1Gi"}}
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &parent)
        .await
        .unwrap();
    let secrets: Api<Secret> = env.api();
    let by_cluster = ListParams::default().labels("postgres.operon.dev/cluster=pg");
    let passwords: Vec<Vec<u8>> = wait_until(
        "the cluster's password Secrets",
        Duration::from_secs(120),
        || async {
            let found: Vec<Vec<u8>> = secrets
                .list(&by_cluster)
                .await?
                .items
                .into_iter()
                .filter_map(|s| Some(s.data?.get("password")?.0.clone()))
                .collect();
            Ok((!found.is_empty()).then_some(found))
        },
    )
    .await
    .unwrap();

    let cases = common::temp_dir(&format!("secrets-{}", env.namespace));
    let recording = Recording::start(&host, "postgres", &cases, 1);
    let change = json!({"metadata": {"annotations": {"e2e.operon.dev/poke": "1"}}});
    clusters
        .patch("pg", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    let dirs = recording.finish(&cases, 1);

    let observed = operon::cli::read_objects(&dirs[0].join("observed.yaml")).unwrap();
    let observed_secrets: Vec<_> = observed.iter().filter(|o| o["kind"] == "Secret").collect();
    assert!(!observed_secrets.is_empty(), "{observed:#?}");
    for secret in &observed_secrets {
        assert_eq!(secret["data"]["password"], "cmVkYWN0ZWQ=", "{secret:#}");
    }
    let case_yaml = std::fs::read_to_string(dirs[0].join("case.yaml")).unwrap();
    assert!(case_yaml.contains("# Secrets redacted"), "{case_yaml}");
    let b64 = base64::engine::general_purpose::STANDARD;
    for file in std::fs::read_dir(&dirs[0]).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for password in &passwords {
            let plain = String::from_utf8_lossy(password);
            assert!(
                !text.contains(plain.as_ref()) && !text.contains(&b64.encode(password)),
                "a password in {}",
                path.display()
            );
        }
    }
    let report = replay("postgres", &cases);
    assert!(report.contains("1 passed, 0 failed"), "{report}");
    let _ = std::fs::remove_dir_all(&cases);
}
