//! The Jobs' scripts against a real PostgreSQL (the Debian `postgresql`
//! package; `cargo xtask test` installs it): for each method, `backup.sh`
//! copies a server holding two databases, a role and rows; `restore.sh`
//! (which the postgres plugin's restore Job runs) builds a fresh data
//! directory from the artifact; a server started on it has the same rows,
//! the role, and the new cluster's passwords. `cleanup.sh` removes one
//! artifact and refuses paths outside its volume.
//!
//! The scripts run with the environment the rendered Jobs give them, bar
//! paths and ports. PostgreSQL refuses to run as root, so as root every
//! command runs as the `postgres` user through `runuser`.

#[path = "../../postgres/tests/pg/sandbox.rs"]
mod pg_sandbox;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pg_sandbox::{Sandbox, free_port, no_env};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

impl Sandbox {
    /// Starts a server on `pgdata`: TCP on 127.0.0.1:`port` with `auth`
    /// (`trust`, or `scram-sha-256` to check passwords) and a socket in
    /// the sandbox.
    fn start(&mut self, pgdata: &Path, port: u16, auth: &str) {
        let hba = self.path(&format!("hba-{port}.conf"));
        std::fs::write(
            &hba,
            format!(
                "local all all trust\nhost all all 127.0.0.1/32 {auth}\nhost replication all 127.0.0.1/32 {auth}\n"
            ),
        )
        .unwrap();
        self.chown();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} -c hba_file={}",
            self.dir.display(),
            hba.display()
        );
        let log = self.path(&format!("server-{port}.log"));
        self.ok(
            "pg_ctl",
            &[
                "-D",
                pgdata.to_str().unwrap(),
                "-w",
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "start",
            ],
            &no_env(),
        );
        self.track(None, pgdata.to_path_buf());
    }

    /// A query over TCP as `postgres` with the restored clusters' password.
    fn psql(&self, port: u16, db: &str, sql: &str) -> String {
        self.psql_as(port, "postgres", "new-superuser", db, sql)
    }

    fn psql_as(&self, port: u16, user: &str, password: &str, db: &str, sql: &str) -> String {
        self.ok(
            "psql",
            &[
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                user,
                "-d",
                db,
                "-c",
                sql,
            ],
            &BTreeMap::from([("PGPASSWORD", password.to_string())]),
        )
    }
}

/// What a restore must bring back: rows of two databases, a role owning
/// a table, the extension-free schema.
fn fingerprint(sb: &Sandbox, port: u16) -> Vec<String> {
    vec![
        sb.psql(
            port,
            "app",
            "SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM cities",
        ),
        sb.psql(
            port,
            "app",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'cities'",
        ),
        sb.psql(port, "other", "SELECT sum(n) FROM numbers"),
        sb.psql(
            port,
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
        ),
        sb.psql(
            port,
            "postgres",
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'",
        ),
    ]
}

#[test]
fn each_method_backs_up_and_restores_the_rows() {
    let mut sb = Sandbox::new("backup", "methods");
    let source = sb.path("source");
    sb.ok(
        "initdb",
        &[
            "-D",
            source.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ],
        &no_env(),
    );
    let port = free_port();
    sb.start(&source, port, "trust");
    for sql in [
        "CREATE ROLE app LOGIN PASSWORD 'app-secret'",
        "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'old-replication'",
        "CREATE DATABASE app OWNER app",
        "CREATE DATABASE other",
    ] {
        sb.psql(port, "postgres", sql);
    }
    sb.psql(port, "app", "CREATE TABLE cities (id int PRIMARY KEY, name text NOT NULL); ALTER TABLE cities OWNER TO app; \
        INSERT INTO cities VALUES (1, 'Lisbon'), (2, 'Porto'), (3, 'Évora')");
    sb.psql(
        port,
        "other",
        "CREATE TABLE numbers AS SELECT g AS n FROM generate_series(1, 1000) g",
    );
    let want = fingerprint(&sb, port);
    assert_eq!(want[0], "1:Lisbon,2:Porto,3:Évora");

    for (i, method) in ["dump", "dumpall", "basebackup"].into_iter().enumerate() {
        let artifact = sb.path(&format!("volume/pgbackups/{method}"));
        let term = sb.path(&format!("termination-{method}"));
        let env = BTreeMap::from([
            ("METHOD", method.to_string()),
            ("DATABASES", String::new()),
            ("ARTIFACT_DIR", artifact.display().to_string()),
            ("PGHOST", "127.0.0.1".to_string()),
            ("PGPORT", port.to_string()),
            ("PGUSER", "postgres".to_string()),
            ("PGPASSWORD", "unused-with-trust".to_string()),
            ("TERMINATION_LOG", term.display().to_string()),
        ]);
        sb.ok("sh", &[script("backup.sh").to_str().unwrap()], &env);
        assert_eq!(
            std::fs::read_to_string(artifact.join("complete"))
                .unwrap()
                .trim(),
            method
        );
        let message = std::fs::read_to_string(&term).unwrap();
        let size: i64 = message
            .trim()
            .strip_prefix("size=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(size > 1000, "{method}: {message}");

        let pgdata = sb.path(&format!("restored-{method}/pgdata"));
        let restore_env = BTreeMap::from([
            ("PGDATA", pgdata.display().to_string()),
            ("ARTIFACT_DIR", artifact.display().to_string()),
            ("POSTGRES_PASSWORD", "new-superuser".to_string()),
            ("PG_REPLICATION_PASSWORD", "new-replication".to_string()),
            (
                "PG_INITDB_ARGS",
                "--encoding=UTF8 --locale=C.UTF-8".to_string(),
            ),
        ]);
        std::fs::create_dir_all(pgdata.parent().unwrap()).unwrap();
        sb.chown();
        sb.ok(
            "sh",
            &[script("restore.sh").to_str().unwrap()],
            &restore_env,
        );
        assert!(
            !sb.path(&format!("restored-{method}/pgdata.restoring"))
                .exists()
        );
        let restored_port = free_port();
        // Passwords checked: the new cluster's, not the backup's.
        sb.start(&pgdata, restored_port, "scram-sha-256");
        assert_eq!(fingerprint(&sb, restored_port), want, "{method}");
        let replicator = sb.psql_as(
            restored_port,
            "replicator",
            "new-replication",
            "postgres",
            "SELECT rolreplication FROM pg_roles WHERE rolname = current_user",
        );
        assert_eq!(replicator, "t", "{method}");
        let old = sb.run(
            "psql",
            &[
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &restored_port.to_string(),
                "-U",
                "replicator",
                "-d",
                "postgres",
                "-c",
                "SELECT 1",
            ],
            &BTreeMap::from([("PGPASSWORD", "old-replication".to_string())]),
        );
        assert!(
            !old.status.success(),
            "{method}: the backup's replication password still works"
        );
        // A second run finds the data directory and leaves it alone.
        let again = sb.run(
            "sh",
            &[script("restore.sh").to_str().unwrap()],
            &restore_env,
        );
        assert!(again.status.success());
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("already restored"),
            "{i}"
        );
    }

    // A dump of named databases only.
    let artifact = sb.path("volume/pgbackups/only-app");
    let env = BTreeMap::from([
        ("METHOD", "dump".to_string()),
        ("DATABASES", "app".to_string()),
        ("ARTIFACT_DIR", artifact.display().to_string()),
        ("PGHOST", "127.0.0.1".to_string()),
        ("PGPORT", port.to_string()),
        ("PGUSER", "postgres".to_string()),
        (
            "TERMINATION_LOG",
            sb.path("termination-only-app").display().to_string(),
        ),
    ]);
    sb.ok("sh", &[script("backup.sh").to_str().unwrap()], &env);
    let mut files: Vec<String> = std::fs::read_dir(&artifact)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(files, ["app.dump", "complete", "globals.sql"]);
}

#[test]
fn restore_refuses_a_partial_artifact_and_cleanup_stays_in_its_volume() {
    let sb = Sandbox::new("backup", "refusals");
    let artifact = sb.path("volume/pgbackups/partial");
    std::fs::create_dir_all(&artifact).unwrap();
    std::fs::write(artifact.join("app.dump"), "half").unwrap();
    sb.chown();
    let env = BTreeMap::from([
        ("PGDATA", sb.path("pgdata").display().to_string()),
        ("ARTIFACT_DIR", artifact.display().to_string()),
        ("POSTGRES_PASSWORD", "x".to_string()),
        ("PG_REPLICATION_PASSWORD", "y".to_string()),
    ]);
    let out = sb.run("sh", &[script("restore.sh").to_str().unwrap()], &env);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a finished backup"));
    assert!(!sb.path("pgdata").exists());

    let mount = sb.path("volume");
    let cleanup = |dir: &str| {
        sb.run(
            "sh",
            &[script("cleanup.sh").to_str().unwrap()],
            &BTreeMap::from([
                ("BACKUP_MOUNT", mount.display().to_string()),
                ("ARTIFACT_DIR", dir.to_string()),
            ]),
        )
    };
    for outside in [
        "/etc".to_string(),
        format!("{}/../x", mount.display()),
        mount.display().to_string(),
    ] {
        let out = cleanup(&outside);
        assert_eq!(out.status.code(), Some(2), "{outside}");
    }
    assert!(cleanup(&artifact.display().to_string()).status.success());
    assert!(!artifact.exists());
    assert!(mount.join("pgbackups").exists(), "only the artifact goes");
    // Already gone: still clean.
    assert!(cleanup(&artifact.display().to_string()).status.success());
}
