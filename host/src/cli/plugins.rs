//! `operon plugins`: what a running host runs, and rolling a plugin back.
//!
//! Talks to the host's admin endpoint (`operon run --admin-addr`, loopback
//! only) with plain HTTP/1.1 over a TCP socket: one request, one JSON
//! answer, so no HTTP client library is needed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::{ExitCode, Failure, Output};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The host's admin address (`operon run --admin-addr`).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub admin_addr: SocketAddr,
    /// Print the host's answer as JSON or YAML instead of a table.
    #[arg(short, long, value_enum, global = true)]
    pub output: Option<Output>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Every plugin: active revision, shadow candidate, rejected builds.
    List,
    /// The kept revisions of one plugin, newest last.
    History { name: String },
    /// Return a plugin to its previous revision (or `--to` a kept one). The
    /// revision is already compiled: this is instant. It holds until the
    /// plugin's file changes again.
    Rollback {
        name: String,
        #[arg(long, value_name = "REVISION")]
        to: Option<u32>,
    },
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let (method, path) = match &args.command {
        Command::List => ("GET", "/plugins".to_string()),
        Command::History { name } => ("GET", format!("/plugins/{name}")),
        Command::Rollback { name, to: None } => ("POST", format!("/plugins/{name}/rollback")),
        Command::Rollback { name, to: Some(n) } => {
            ("POST", format!("/plugins/{name}/rollback/{n}"))
        }
    };
    let (status, body) = request(args.admin_addr, method, &path)?;
    if status != 200 {
        let why = body["error"].as_str().unwrap_or("unexpected answer");
        return Err(Failure::new(ExitCode::Failure, why));
    }
    if let Some(output) = args.output {
        return super::print(&body, output);
    }
    match &args.command {
        Command::List => {
            let plugins = body["plugins"].as_array().cloned().unwrap_or_default();
            println!(
                "{:<16} {:<28} {:>8} {:<14} {:>10} {:>9} CANDIDATE",
                "PLUGIN", "FILE", "REVISION", "DIGEST", "RECONCILES", "FAILURES"
            );
            for p in &plugins {
                let active = p["revisions"]
                    .as_array()
                    .and_then(|rs| rs.iter().find(|r| r["state"] == "active"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let candidate = match &p["candidate"] {
                    Value::Null => "-".to_string(),
                    c => format!(
                        "{} ({} diffs in {} runs)",
                        short(&c["digest"]),
                        c["diffs"],
                        c["reconciles"]
                    ),
                };
                println!(
                    "{:<16} {:<28} {:>8} {:<14} {:>10} {:>9} {candidate}",
                    text(&p["name"]),
                    text(&p["file"]),
                    num(&active["number"]),
                    short(&active["digest"]),
                    num(&active["tracker"]["reconciles"]),
                    num(&active["tracker"]["failures"]),
                );
            }
            for p in &plugins {
                for r in p["rejected"].as_array().into_iter().flatten() {
                    println!("rejected {}: {}", text(&r["file"]), text(&r["reason"]));
                }
                for s in p["candidate"]["samples"].as_array().into_iter().flatten() {
                    println!("{} candidate differs: {}", text(&p["name"]), text(s));
                }
            }
            for r in body["rejected"].as_array().into_iter().flatten() {
                println!("rejected {}: {}", text(&r["file"]), text(&r["reason"]));
            }
        }
        Command::History { .. } => print_history(&body),
        Command::Rollback { .. } => {
            println!("{}", text(&body["message"]));
            print_history(&body["plugin"]);
        }
    }
    Ok(())
}

fn print_history(plugin: &Value) {
    println!(
        "{:>8} {:<14} {:<10} {:>10} {:>9} {:>10}  STATE",
        "REVISION", "DIGEST", "VERSION", "RECONCILES", "FAILURES", "COMPILE"
    );
    for r in plugin["revisions"].as_array().into_iter().flatten() {
        let state = match r["reason"].as_str() {
            Some(why) => format!("{}: {why}", text(&r["state"])),
            None => text(&r["state"]).to_string(),
        };
        println!(
            "{:>8} {:<14} {:<10} {:>10} {:>9} {:>8.1}ms  {state}",
            num(&r["number"]),
            short(&r["digest"]),
            text(&r["version"]),
            num(&r["tracker"]["reconciles"]),
            num(&r["tracker"]["failures"]),
            r["compileMs"].as_f64().unwrap_or_default(),
        );
    }
}

/// A number as text, so that width and alignment apply.
fn num(v: &Value) -> String {
    v.as_u64().map_or("-".into(), |n| n.to_string())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn short(digest: &Value) -> &str {
    let d = text(digest);
    d.get(..12).unwrap_or(d)
}

/// One HTTP request to the admin endpoint: (status, JSON body).
fn request(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, Value), Failure> {
    let failed = |e: std::io::Error| {
        Failure::new(
            ExitCode::Failure,
            format!(
                "cannot reach the host's admin endpoint at {addr} ({e}); is `operon run` running with --admin-addr {addr}?"
            ),
        )
    };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(failed)?;
    // A rollback waits for in-flight reconciles of the old revision.
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(failed)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(failed)?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).map_err(failed)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or_else(|_| {
        serde_json::json!({"error": format!("{addr}{path} answered {status}: {}", body.trim())})
    });
    Ok((status, body))
}
