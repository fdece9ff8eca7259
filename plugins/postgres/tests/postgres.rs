//! The plugin's generated files against a real PostgreSQL (the Debian
//! `postgresql` package; `cargo xtask test` installs it): the instance
//! entrypoint with the generated postgresql.conf/pg_hba.conf boots a
//! primary and clones a streaming replica, which is then promoted; the SQL
//! Job's script, run twice, makes users, databases and extensions once and
//! drops an `ensure: absent` user and database; the data-load scripts load
//! a CSV and a JSON file.
//!
//! Everything runs with the environment the rendered StatefulSet and Jobs
//! give their containers (Secrets resolved from the rendered Secrets);
//! only paths, the host and ports differ, and the copy of postgresql.conf
//! gets two lines for the sandbox (a free port, a socket directory in the
//! temporary directory). PostgreSQL refuses to run as root, so as root the
//! processes run as the `postgres` user through `runuser`.

#[path = "pg/sandbox.rs"]
mod pg_sandbox;
mod sim;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use pg_sandbox::{Sandbox, free_port, no_env};
use postgres::children::unbase64;
use serde_json::Value;

impl Sandbox {
    /// Starts the instance entrypoint in the background; its output goes
    /// to `<log>`.
    fn start(&mut self, env: &BTreeMap<String, String>, script: &Path, log: &str) {
        let log_file = std::fs::File::create(self.path(log)).unwrap();
        let child = self
            .command("sh", &[script.to_str().unwrap()], env)
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap();
        self.track(Some(child), PathBuf::from(env.get("PGDATA").unwrap()));
    }

    /// Waits until a server accepts connections on the socket directory.
    fn wait_ready(&mut self, port: u16, log: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self.run(
                "pg_isready",
                &[
                    "-q",
                    "-h",
                    self.dir.to_str().unwrap(),
                    "-p",
                    &port.to_string(),
                ],
                &no_env(),
            );
            if out.status.success() {
                return;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "an instance exited ({status}):\n{}",
                    std::fs::read_to_string(self.path(log)).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL on port {port} did not become ready:\n{}",
                std::fs::read_to_string(self.path(log)).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One value from a query, over the socket as the postgres user.
    fn query(&self, port: u16, db: &str, sql: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
            &no_env(),
        );
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// The rendered children of the `running` fixture, by (kind, name).
fn rendered() -> BTreeMap<(String, String), Value> {
    let mut sim = sim::Sim::new(Value::Null);
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/running/parent.yaml"),
    )
    .unwrap();
    sim.parent = serde_saphyr::from_str(&text).unwrap();
    let observed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/running/observed.yaml"),
    )
    .unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&observed).unwrap();
    for o in docs {
        sim.objects.insert(sim::key(&o), o);
    }
    sim.reconcile()
        .children
        .into_iter()
        .map(|c| (sim::key(&c), c))
        .collect()
}

fn secret(children: &BTreeMap<(String, String), Value>, name: &str, key: &str) -> String {
    let s = children
        .get(&("Secret".to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("no Secret {name}"));
    String::from_utf8(unbase64(s["data"][key].as_str().unwrap()).unwrap()).unwrap()
}

/// A container's environment with Secret references resolved; `extra`
/// resolves references to Secrets the plugin does not make.
fn container_env(
    children: &BTreeMap<(String, String), Value>,
    container: &Value,
    extra: &BTreeMap<(String, String), String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else {
            let r = &e["valueFrom"]["secretKeyRef"];
            let (s, k) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
            match extra.get(&(s.to_string(), k.to_string())) {
                Some(v) => v.clone(),
                None => secret(children, s, k),
            }
        };
        env.insert(name, value);
    }
    env
}

fn config(children: &BTreeMap<(String, String), Value>, key: &str) -> String {
    children[&("ConfigMap".to_string(), "hippo-config".to_string())]["data"][key]
        .as_str()
        .unwrap()
        .to_string()
}

/// Writes the ConfigMap's files into `<sandbox>/conf`, with the sandbox's
/// port and socket directory appended to postgresql.conf.
fn write_config(sb: &Sandbox, children: &BTreeMap<(String, String), Value>, port: u16) -> PathBuf {
    let conf = sb.path(&format!("conf-{port}"));
    std::fs::create_dir_all(&conf).unwrap();
    let pg_conf = format!(
        "{}\n# test sandbox\nport = {port}\nunix_socket_directories = '{}'\n",
        config(children, "postgresql.conf"),
        sb.dir.display()
    );
    std::fs::write(conf.join("postgresql.conf"), pg_conf).unwrap();
    std::fs::write(conf.join("pg_hba.conf"), config(children, "pg_hba.conf")).unwrap();
    std::fs::write(conf.join("instance.sh"), config(children, "instance.sh")).unwrap();
    sb.chown();
    conf
}

fn instance_env(
    sb: &Sandbox,
    children: &BTreeMap<(String, String), Value>,
    instance: &str,
    conf: &Path,
    port: u16,
    primary_port: u16,
) -> BTreeMap<String, String> {
    let sts = &children[&("StatefulSet".to_string(), instance.to_string())];
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let mut env = container_env(children, container, &BTreeMap::new());
    env.insert(
        "PGDATA".into(),
        sb.path(&format!("{instance}/pgdata")).display().to_string(),
    );
    env.insert(
        "PG_WALDIR".into(),
        sb.path(&format!("{instance}/wal/pg_wal"))
            .display()
            .to_string(),
    );
    env.insert("PG_CONFIG_DIR".into(), conf.display().to_string());
    env.insert("PG_PRIMARY_HOST".into(), "127.0.0.1".into());
    env.insert("PG_PRIMARY_PORT".into(), primary_port.to_string());
    env.insert("PGPORT".into(), port.to_string());
    env.insert("PG_MAJOR".into(), sb.major.to_string());
    env
}

/// Runs a Job's container (job.sh) against the sandbox's primary.
fn run_job(
    sb: &Sandbox,
    children: &BTreeMap<(String, String), Value>,
    job: &Value,
    port: u16,
    overrides: &[(&str, String)],
    extra: &BTreeMap<(String, String), String>,
) -> Output {
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let mut env = container_env(children, container, extra);
    env.insert("PGHOST".into(), "127.0.0.1".into());
    env.insert("PGPORT".into(), port.to_string());
    for (k, v) in overrides {
        env.insert(k.to_string(), v.clone());
    }
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(&command[..2], ["sh", "-c"]);
    sb.run("sh", &["-c", command[2]], &env)
}

fn jobs<'a>(children: &'a BTreeMap<(String, String), Value>, prefix: &str) -> Vec<&'a Value> {
    children
        .iter()
        .filter(|((k, n), _)| k == "Job" && n.starts_with(prefix))
        .map(|(_, v)| v)
        .collect()
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn primary_replica_sql_and_data_loads_on_a_real_postgresql() {
    let children = rendered();
    let mut sb = Sandbox::new("pg", "cluster");
    let (p0, p1) = (free_port(), free_port());

    // The primary: initdb with the generated configuration.
    let conf0 = write_config(&sb, &children, p0);
    let env0 = instance_env(&sb, &children, "hippo-0", &conf0, p0, p0);
    sb.start(&env0, &conf0.join("instance.sh"), "hippo-0.log");
    sb.wait_ready(p0, "hippo-0.log");
    assert_eq!(sb.query(p0, "postgres", "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(
        sb.query(p0, "postgres", "SHOW max_connections"),
        "200",
        "spec.postgresql.parameters"
    );
    assert_eq!(sb.query(p0, "postgres", "SHOW wal_level"), "replica");
    assert_eq!(
        sb.query(
            p0,
            "postgres",
            "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'"
        ),
        "t"
    );
    assert_eq!(sb.query(p0, "postgres", "SHOW data_checksums"), "on");

    // Objects the spec says must go.
    sb.query(p0, "postgres", "CREATE ROLE legacy LOGIN");
    sb.query(p0, "postgres", "CREATE DATABASE old_app");
    sb.query(p0, "postgres", "CREATE TABLE legacy_owned (id int)");
    sb.query(p0, "postgres", "ALTER TABLE legacy_owned OWNER TO legacy");

    // The SQL Job, twice.
    let sql = jobs(&children, "hippo-sql-");
    assert_eq!(sql.len(), 1);
    let reporting_pw = "reporting-secret-1".to_string();
    let extra = BTreeMap::from([(
        ("reporting-password".to_string(), "password".to_string()),
        reporting_pw.clone(),
    )]);
    let roles = "SELECT string_agg(rolname || ':' || rolcreatedb, ',' ORDER BY rolname) FROM pg_roles WHERE rolname !~ '^pg_'";
    for run in 1..=2 {
        let out = run_job(&sb, &children, sql[0], p0, &[], &extra);
        assert_ok(&format!("SQL Job run {run}"), &out);
        assert_eq!(
            sb.query(p0, "postgres", roles),
            "app:true,postgres:true,replicator:false,reporting:false",
            "run {run}"
        );
        assert_eq!(
            sb.query(p0, "postgres", "SELECT string_agg(datname || ':' || pg_get_userbyid(datdba), ',' ORDER BY datname) FROM pg_database WHERE NOT datistemplate"),
            "app:app,postgres:postgres",
            "run {run}"
        );
        assert_eq!(
            sb.query(
                p0,
                "app",
                "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension"
            ),
            "pg_stat_statements,pgcrypto,plpgsql",
            "run {run}"
        );
    }
    assert_eq!(
        sb.query(
            p0,
            "postgres",
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'legacy_owned'"
        ),
        "postgres",
        "what the absent user owned was reassigned"
    );
    // The users log in over TCP with their passwords (scram, pg_hba).
    for (user, pw) in [
        ("app", secret(&children, "hippo-pguser-app", "password")),
        ("reporting", reporting_pw),
    ] {
        let out = sb.run(
            "psql",
            &[
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &p0.to_string(),
                "-U",
                user,
                "-d",
                "app",
                "-c",
                "SELECT current_user",
            ],
            &BTreeMap::from([("PGPASSWORD".to_string(), pw)]),
        );
        assert_ok(&format!("login as {user}"), &out);
    }
    let out = sb.run(
        "psql",
        &[
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &p0.to_string(),
            "-U",
            "app",
            "-d",
            "app",
            "-c",
            "SELECT 1",
        ],
        &BTreeMap::from([("PGPASSWORD".to_string(), "wrong".to_string())]),
    );
    assert!(!out.status.success(), "a wrong password is refused");

    // Data loads: a CSV (replace) and a JSON array (append).
    std::fs::write(
        sb.path("cities.csv"),
        "id,name,population\n1,Lisbon,545000\n2,\"Porto, city\",232000\n3,Braga,193000\n",
    )
    .unwrap();
    std::fs::write(
        sb.path("people.json"),
        r#"[{"id": 1, "name": "Ada", "email": "ada@example.com"}, {"id": 2, "name": "Linus", "email": null}]"#,
    )
    .unwrap();
    sb.chown();
    let loads = jobs(&children, "hippo-load-");
    assert_eq!(loads.len(), 2);
    for run in 1..=2 {
        for job in &loads {
            let key = job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"][0]["key"]
                .as_str()
                .unwrap();
            let file = sb.path(key).display().to_string();
            let out = run_job(
                &sb,
                &children,
                job,
                p0,
                &[("LOAD_FILE", file)],
                &BTreeMap::new(),
            );
            assert_ok(&format!("data load {key}, run {run}"), &out);
        }
        assert_eq!(
            sb.query(
                p0,
                "app",
                "SELECT count(*) || ':' || sum(population) || ':' || max(name) FROM public.cities"
            ),
            "3:970000:Porto, city",
            "replace mode: the same rows after run {run}"
        );
        assert_eq!(
            sb.query(p0, "app", "SELECT count(*) FROM people"),
            (2 * run).to_string(),
            "append mode adds the file again"
        );
    }
    assert_eq!(
        sb.query(
            p0,
            "app",
            "SELECT coalesce(email, 'null') FROM people WHERE name = 'Linus' LIMIT 1"
        ),
        "null"
    );
    // A load whose file is missing fails and changes nothing.
    let out = run_job(
        &sb,
        &children,
        loads[0],
        p0,
        &[("LOAD_FILE", sb.path("missing.csv").display().to_string())],
        &BTreeMap::new(),
    );
    assert!(!out.status.success(), "a missing file fails the load");

    // A replica clones the primary with pg_basebackup and streams from it.
    let conf1 = write_config(&sb, &children, p1);
    let env1 = instance_env(&sb, &children, "hippo-1", &conf1, p1, p0);
    assert_eq!(env1["PG_ROLE"], "replica");
    sb.start(&env1, &conf1.join("instance.sh"), "hippo-1.log");
    sb.wait_ready(p1, "hippo-1.log");
    assert_eq!(sb.query(p1, "postgres", "SELECT pg_is_in_recovery()"), "t");
    sb.query(
        p0,
        "app",
        "INSERT INTO people VALUES (3, 'Grace', 'grace@example.com')",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while sb.query(
        p1,
        "app",
        "SELECT count(*) FROM people WHERE name = 'Grace'",
    ) != "1"
    {
        assert!(
            Instant::now() < deadline,
            "the replica does not stream the primary's changes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        sb.query(
            p0,
            "postgres",
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
        ),
        "1"
    );

    // Failover: the primary goes away, the replica restarts as primary and
    // is promoted by the entrypoint.
    sb.stop(Path::new(&env0["PGDATA"]));
    sb.stop(Path::new(&env1["PGDATA"]));
    let mut promoted = env1.clone();
    promoted.insert("PG_ROLE".into(), "primary".into());
    sb.start(
        &promoted,
        &conf1.join("instance.sh"),
        "hippo-1-promoted.log",
    );
    sb.wait_ready(p1, "hippo-1-promoted.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while sb.query(p1, "postgres", "SELECT pg_is_in_recovery()") != "f" {
        assert!(Instant::now() < deadline, "the replica was not promoted");
        std::thread::sleep(Duration::from_millis(200));
    }
    sb.query(p1, "app", "INSERT INTO people VALUES (4, 'Barbara', NULL)");
    assert_eq!(sb.query(p1, "app", "SELECT count(*) FROM people"), "6");
}
