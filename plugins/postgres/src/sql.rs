//! The psql scripts of the SQL Job and of data loads.
//!
//! They are plain text in the Jobs' environment, so the same strings are
//! run against a real PostgreSQL in `tests/postgres.rs`. Everything is
//! idempotent: a Job re-run after a crash or a host restart changes nothing
//! the first run already did. Names are validated identifiers
//! (`[a-z_][a-z0-9_]*`) and still quoted; passwords never appear in the
//! script: psql reads them from the environment (`\getenv`, psql 15+).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::spec::{ClusterSpec, DataLoad, Ensure, LoadFormat, LoadMode};

/// Role attributes the plugin sets explicitly on every run, each to the
/// value the spec asks (the positive form listed in `options`, else the
/// negative), so removing an option from the spec takes it away again.
const ROLE_FLAGS: [(&str, &str, bool); 6] = [
    // (option, negation, default when unlisted)
    ("LOGIN", "NOLOGIN", true),
    ("INHERIT", "NOINHERIT", true),
    ("CREATEDB", "NOCREATEDB", false),
    ("CREATEROLE", "NOCREATEROLE", false),
    ("BYPASSRLS", "NOBYPASSRLS", false),
    ("REPLICATION", "NOREPLICATION", false),
];

/// `"name"`, or `"schema"."table"`.
pub fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The environment variable the SQL Job reads the password of the `i`-th
/// present user from.
pub fn password_env(i: usize) -> String {
    format!("PW_{i}")
}

/// The users, databases and extensions script, or none when the spec has
/// neither users nor databases. Present users are numbered in spec order
/// for [`password_env`]. The sections run in an order each can rely on:
/// roles before the databases they own, databases before grants on them,
/// and what goes away last.
pub fn users_script(spec: &ClusterSpec) -> Option<String> {
    if spec.users.is_empty() && spec.databases.is_empty() {
        return None;
    }
    let mut s = String::from(
        "-- operon postgres plugin: users, databases and extensions.\n\
         -- Idempotent: every statement checks before it changes anything.\n",
    );
    present_users(&mut s, spec);
    present_databases(&mut s, spec);
    database_grants(&mut s, spec);
    inside_databases(&mut s, spec);
    let _ = writeln!(s, "\n\\connect postgres");
    absent_databases_and_users(&mut s, spec);
    Some(s)
}

/// Each present user: created if missing, then its flags and password.
fn present_users(s: &mut String, spec: &ClusterSpec) {
    let present_users = spec.users.iter().filter(|u| u.ensure == Ensure::Present);
    for (i, user) in present_users.enumerate() {
        let (ident, lit) = (quote_ident(&user.name), quote_literal(&user.name));
        let var = format!("pw_{i}");
        let flags: Vec<&str> = ROLE_FLAGS
            .iter()
            .map(|(yes, no, default)| {
                let listed = user.options.iter().any(|o| o == yes);
                let negated = user.options.iter().any(|o| o == no);
                if listed || (*default && !negated) {
                    *yes
                } else {
                    *no
                }
            })
            .collect();
        let _ = write!(
            s,
            "\n-- user {name}\n\
             SELECT 'CREATE ROLE {ident}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit})\n\\gexec\n\
             \\getenv {var} {env}\n\
             ALTER ROLE {ident} WITH {flags} PASSWORD :'{var}';\n",
            name = user.name,
            env = password_env(i),
            flags = flags.join(" "),
        );
    }
}

/// Each present database: created if missing, and its owner.
fn present_databases(s: &mut String, spec: &ClusterSpec) {
    for db in spec
        .databases
        .iter()
        .filter(|d| d.ensure == Ensure::Present)
    {
        let (ident, lit) = (quote_ident(&db.name), quote_literal(&db.name));
        let owner = quote_ident(db.owner.as_deref().unwrap_or("postgres"));
        let _ = write!(
            s,
            "\n-- database {name}\n\
             SELECT 'CREATE DATABASE {ident} OWNER {owner}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {lit})\n\\gexec\n\
             ALTER DATABASE {ident} OWNER TO {owner};\n",
            name = db.name,
        );
    }
}

/// The privileges of present users on the databases they list.
fn database_grants(s: &mut String, spec: &ClusterSpec) {
    for user in spec.users.iter().filter(|u| u.ensure == Ensure::Present) {
        for db in &user.databases {
            let _ = writeln!(
                s,
                "GRANT ALL PRIVILEGES ON DATABASE {} TO {};",
                quote_ident(db),
                quote_ident(&user.name)
            );
        }
    }
}

/// Per database: schema privileges (PUBLIC lost CREATE on public in 15)
/// and extensions, which live in each database.
fn inside_databases(s: &mut String, spec: &ClusterSpec) {
    // Each database's grantees, present users in spec order, gathered in
    // one pass (a user × database scan is quadratic in large specs).
    let mut grantees: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for user in spec.users.iter().filter(|u| u.ensure == Ensure::Present) {
        for db in &user.databases {
            let users = grantees.entry(db.as_str()).or_default();
            if users.last() != Some(&user.name.as_str()) {
                users.push(&user.name);
            }
        }
    }
    for db in spec
        .databases
        .iter()
        .filter(|d| d.ensure == Ensure::Present)
    {
        let grantees = grantees
            .get(db.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        if grantees.is_empty() && db.extensions.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n\\connect {}", quote_ident(&db.name));
        for g in grantees {
            let _ = writeln!(s, "GRANT ALL ON SCHEMA public TO {};", quote_ident(g));
        }
        for ext in &db.extensions {
            let _ = writeln!(s, "CREATE EXTENSION IF NOT EXISTS {};", quote_ident(ext));
        }
    }
}

/// Absent databases are dropped; what an absent role owns goes to
/// postgres, in every database the spec keeps (REASSIGN/DROP OWNED act on
/// the current database), and then the role.
fn absent_databases_and_users(s: &mut String, spec: &ClusterSpec) {
    for db in spec.databases.iter().filter(|d| d.ensure == Ensure::Absent) {
        let _ = writeln!(
            s,
            "DROP DATABASE IF EXISTS {} WITH (FORCE);",
            quote_ident(&db.name)
        );
    }
    let absent: Vec<_> = spec
        .users
        .iter()
        .filter(|u| u.ensure == Ensure::Absent)
        .collect();
    if absent.is_empty() {
        return;
    }
    let databases: Vec<&str> = ["postgres"]
        .into_iter()
        .chain(
            spec.databases
                .iter()
                .filter(|d| d.ensure == Ensure::Present)
                .map(|d| d.name.as_str()),
        )
        .collect();
    for db in databases {
        let _ = writeln!(s, "\\connect {}", quote_ident(db));
        for user in &absent {
            let (ident, lit) = (quote_ident(&user.name), quote_literal(&user.name));
            let _ = write!(
                s,
                "SELECT 'REASSIGN OWNED BY {ident} TO postgres' WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = {lit})\n\\gexec\n\
                 SELECT 'DROP OWNED BY {ident}' WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = {lit})\n\\gexec\n"
            );
        }
    }
    for user in &absent {
        let _ = writeln!(s, "DROP ROLE IF EXISTS {};", quote_ident(&user.name));
    }
}

/// The psql script of one data load. It reads the file named by the
/// `LOAD_FILE` environment variable and loads it in one transaction.
pub fn load_script(load: &DataLoad) -> String {
    let table = quote_ident(&load.table);
    let mut s = format!(
        "-- operon postgres plugin: data load {} into {}.{} ({}).\n",
        load.name,
        load.database,
        load.table,
        match load.format {
            LoadFormat::Csv => "csv",
            LoadFormat::Json => "json",
        }
    );
    if load.format == LoadFormat::Json {
        s.push_str("\\set content `cat \"$LOAD_FILE\"`\n");
    }
    s.push_str("BEGIN;\n");
    if let Some(def) = &load.table_definition {
        let _ = writeln!(s, "CREATE TABLE IF NOT EXISTS {table} ({def});");
    }
    if load.mode == LoadMode::Replace {
        let _ = writeln!(s, "TRUNCATE {table};");
    }
    match load.format {
        LoadFormat::Csv => {
            let _ = writeln!(
                s,
                "\\copy {table} FROM PROGRAM 'cat \"$LOAD_FILE\"' WITH (FORMAT csv, HEADER true)"
            );
        }
        LoadFormat::Json => {
            let _ = writeln!(
                s,
                "INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, :'content'::json);"
            );
        }
    }
    s.push_str("COMMIT;\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> ClusterSpec {
        serde_json::from_value(json).expect("spec")
    }

    /// Schema grants follow the spec's user order, once per user even when
    /// a user lists the database twice, and skip absent users.
    #[test]
    fn schema_grants_in_user_order_once_each() {
        let spec = spec(serde_json::json!({
            "version": 16,
            "storage": {"size": "1Gi"},
            "users": [
                {"name": "zed", "databases": ["app", "app"]},
                {"name": "gone", "databases": ["app"], "ensure": "absent"},
                {"name": "amy", "databases": ["app"]}
            ],
            "databases": [{"name": "app"}]
        }));
        let script = users_script(&spec).expect("script");
        let inside = script
            .split("\\connect \"app\"\n")
            .nth(1)
            .expect("a section for app");
        let grants: Vec<&str> = inside
            .lines()
            .take_while(|l| l.starts_with("GRANT ALL ON SCHEMA"))
            .collect();
        assert_eq!(
            grants,
            [
                "GRANT ALL ON SCHEMA public TO \"zed\";",
                "GRANT ALL ON SCHEMA public TO \"amy\";"
            ]
        );
    }
}
