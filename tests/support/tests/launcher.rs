//! The launcher's own contract: a `ClusterGuard` starts a working cluster and
//! dropping it stops exactly the processes it recorded and removes the state.
//! (Starts a second, private cluster even when `OPERON_TEST_KUBECONFIG` is set.)

use std::path::Path;

use operon_test_support::controlplane::{self, ClusterGuard, UpOptions};

fn recorded_pids(state_dir: &Path) -> Vec<u32> {
    let json = std::fs::read_to_string(state_dir.join("state.json")).expect("state.json");
    json.match_indices("\"pid\": ")
        .map(|(i, m)| {
            let rest = &json[i + m.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().expect("pid")
        })
        .collect()
}

#[test]
fn cluster_guard_starts_and_stops_on_drop() {
    let state_dir = controlplane::target_dir().join(format!(
        "operon-cluster-launcher-test-{}",
        std::process::id()
    ));
    let mut opts = UpOptions::new(&state_dir);
    opts.nodes = 1;
    opts.owner_pid = Some(std::process::id());
    let guard = ClusterGuard::start(&opts).expect("cluster starts");
    assert!(
        guard.kubeconfig().is_file(),
        "kubeconfig {} exists",
        guard.kubeconfig().display()
    );
    assert!(
        controlplane::status(&state_dir).expect("status runs"),
        "status reports healthy"
    );
    let pids = recorded_pids(&state_dir);
    assert!(
        pids.len() >= 6,
        "etcd, apiserver, controller-manager, scheduler, kwok, watchdog: {pids:?}"
    );
    for pid in &pids {
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} running"
        );
    }

    drop(guard);

    for pid in &pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie not yet reaped by init.
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "pid {pid} stopped: {stat}"
        );
    }
    assert!(
        !state_dir.exists(),
        "state dir {} removed",
        state_dir.display()
    );
}
