//! The host's OCI image, built the way `cargo xtask image` builds it (the
//! same code, `operon_test_support::image`) from this test's `operon`
//! binary, pushed to the control plane's registry, pulled back and
//! unpacked into a directory: nothing but the unpacked layers is there
//! when the host runs under `chroot` (which needs root, as the tests run).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use operon_test_support::{TestEnv, controlplane, image, wait_until};
use serde_json::Value;

/// Every file (not directory) under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `operon <args>` with the unpacked image as its root and an empty
/// environment (as the image's config would start it, bar its `Env`).
fn in_chroot(rootfs: &Path, args: &[&str]) -> Output {
    Command::new("chroot")
        .arg(rootfs)
        .arg("/operon")
        .args(args)
        .env_clear()
        // Read by this process to find `chroot`; inside, nothing is there.
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("running chroot")
}

/// The config: non-root, `operon run`, the cache where the chart mounts
/// its emptyDir, this machine's platform.
fn check_config(pinned: &str) {
    let config: Value = serde_json::from_str(&image::config(pinned).unwrap()).unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/operon", "run"]));
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some(image::architecture()))
    );
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "OPERON_CACHE_DIR=/var/cache/operon/compiled"),
        "{c}"
    );
}

/// The layers, unpacked: the binary, the libraries ldd names, the CA
/// bundle, passwd and group — no shell, nothing else.
fn check_layers(rootfs: &Path, expected: &[PathBuf], binary: &Path) {
    let unpacked = files(rootfs);
    assert_eq!(
        unpacked, expected,
        "the image holds exactly what was assembled"
    );
    let libraries = image::libraries(binary).unwrap();
    assert_eq!(
        unpacked.len(),
        3 + libraries.len()
            + usize::from(rootfs.join("etc/ssl/certs/ca-certificates.crt").exists()),
        "{unpacked:?}"
    );
    assert!(!rootfs.join("bin/sh").exists(), "no shell");
    let cache = std::fs::metadata(rootfs.join("var/cache/operon")).unwrap();
    assert_eq!(
        (cache.uid(), cache.gid()),
        (image::USER, image::USER),
        "the cache directory is the user's"
    );
    let root_owned = std::fs::metadata(rootfs.join("operon")).unwrap();
    assert_eq!(
        root_owned.uid(),
        0,
        "the binary is root's, read-only to the user"
    );
}

#[tokio::test]
async fn the_image_holds_all_the_host_needs_and_runs_under_chroot() {
    let env = TestEnv::new().await;
    let state_dir = env.kubeconfig_path.parent().unwrap();
    let registry = controlplane::registries(state_dir).unwrap().open;
    let work = common::temp_dir(&format!("image-{}", env.namespace));
    let binary = Path::new(env!("CARGO_BIN_EXE_operon"));
    let reference = format!("{registry}/operon-test:{}", env.namespace);
    let built = image::build_and_push(binary, &work, &reference).unwrap();
    assert!(built.pinned.contains("@sha256:"), "{}", built.pinned);

    check_config(&built.pinned);
    let rootfs = work.join("unpacked");
    image::unpack(&built.pinned, &rootfs).unwrap();
    check_layers(&rootfs, &built.files, binary);

    // It runs with nothing but the layers around it.
    let version = in_chroot(&rootfs, &["--version"]);
    let outside = Command::new(binary).arg("--version").output().unwrap();
    assert_eq!(stdout(&version), stdout(&outside));
    assert!(
        stdout(&version).starts_with("operon "),
        "{}",
        stdout(&version)
    );

    // And reconciles inside: the memcached example on its fixture gives
    // the same answer as outside.
    let plugin = common::component("rust-memcached");
    std::fs::copy(&plugin, rootfs.join("tmp/plugin.wasm")).unwrap();
    let parent = common::memcached_fixture("parent.yaml");
    std::fs::copy(&parent, rootfs.join("tmp/parent.yaml")).unwrap();
    let args = [
        "--no-cache",
        "reconcile",
        "/tmp/plugin.wasm",
        "--parent",
        "/tmp/parent.yaml",
        "--now",
        "2026-01-01T00:00:00Z",
    ];
    let inside = stdout(&in_chroot(&rootfs, &args));
    let outside = Command::new(binary)
        .args(["--no-cache", "reconcile"])
        .arg(&plugin)
        .arg("--parent")
        .arg(&parent)
        .args(["--now", "2026-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(inside, stdout(&outside));
    assert!(inside.contains("kind: Deployment"), "{inside}");

    // And the entrypoint, `operon run`, against the control plane: TLS to
    // the API server, the compile cache where the image says, the demo
    // converged.
    run_inside(&env, &rootfs).await;
    env.cleanup().await.unwrap();
    // The unpacked image is a few hundred MB: not left behind per run.
    std::fs::remove_dir_all(&work).unwrap();
}

/// `operon run` in the unpacked image until the memcached demo converges;
/// then SIGTERM, and a clean exit.
async fn run_inside(env: &TestEnv, rootfs: &Path) {
    use common::host::{WAIT, create_memcached, free_port, get};
    use k8s_openapi::api::apps::v1::Deployment;
    std::fs::create_dir_all(rootfs.join("tmp/plugins")).unwrap();
    std::fs::copy(
        common::component("rust-memcached"),
        rootfs.join("tmp/plugins/rust_memcached.wasm"),
    )
    .unwrap();
    std::fs::copy(&env.kubeconfig_path, rootfs.join("tmp/kubeconfig")).unwrap();
    let (m, h, a) = (free_port(), free_port(), free_port());
    let health = format!("127.0.0.1:{h}");
    let mut child = Command::new("chroot")
        .arg(rootfs)
        .args([
            "/operon",
            "run",
            "--plugins",
            "/tmp/plugins",
            "--kubeconfig",
            "/tmp/kubeconfig",
        ])
        .args(["--namespace", &env.namespace])
        .args(["--metrics-addr", &format!("127.0.0.1:{m}")])
        .args([
            "--health-addr",
            &health,
            "--admin-addr",
            &format!("127.0.0.1:{a}"),
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OPERON_CACHE_DIR", "/var/cache/operon/compiled")
        .spawn()
        .expect("starting operon run under chroot");
    wait_until("operon run in the image to be ready", WAIT, || async {
        Ok(get(&health, "/readyz")
            .await
            .ok()
            .filter(|(c, _)| *c == 200))
    })
    .await
    .unwrap();
    create_memcached(env, "inside", 2).await;
    let deployments: kube::Api<Deployment> = env.api();
    wait_until(
        "the Deployment applied from inside the image",
        WAIT,
        || async {
            let d = deployments.get_opt("inside").await?;
            Ok(d.filter(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(2)))
        },
    )
    .await
    .unwrap();
    let compiled = std::fs::read_dir(rootfs.join("var/cache/operon/compiled"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        compiled > 0,
        "the compile cache is in the image's cache directory"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "operon run in the image exits cleanly on SIGTERM: {status}"
    );
}
