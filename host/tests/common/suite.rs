//! The PostgreSQL suite as the end-to-end tests load it: the postgres,
//! backup (two components) and scaling plugins in one host, with the
//! grants the host operator gives them (each plugin's README shows its own).

use std::path::PathBuf;

use operon_test_support::TestEnv;

/// Every component of the suite.
pub const SUITE: [&str; 4] = [
    "postgres",
    "operon-backup",
    "operon-backup-schedule",
    "operon-scaling",
];

/// A grants file for the suite: the backup plugin reads clusters and Pods
/// and annotates clusters; the scaling plugin's grant is its own
/// `plugins/scaling/grants.yaml`.
pub fn grants(env: &TestEnv) -> PathBuf {
    let scaling =
        std::fs::read_to_string(super::root().join("plugins/scaling/grants.yaml")).unwrap();
    let path = super::temp_dir(&format!("grants-{}", env.namespace)).join("grants.yaml");
    std::fs::write(
        &path,
        format!(
            "{scaling}\n  backup:\n    reads: [v1/Pod, postgres.operon.dev/v1alpha1/PostgresCluster]\n    \
             patches: [postgres.operon.dev/v1alpha1/PostgresCluster]\n"
        ),
    )
    .unwrap();
    path
}
