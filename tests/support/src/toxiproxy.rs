//! Toxiproxy (built into the control plane binary) between a client and the
//! API server, for the fault tests: start one, make a proxy, add and remove
//! toxics (latency, bandwidth, reset_peer, timeout, slow_close) over its
//! HTTP API. Std only: requests are a few bytes of HTTP/1.1 on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::controlplane;

/// A running toxiproxy server, killed when dropped.
pub struct Toxiproxy {
    api: String,
    child: Child,
}

/// One proxy: connections to `listen` go to its upstream, through its toxics.
pub struct Proxy {
    pub name: String,
    pub listen: String,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Toxiproxy {
    /// Starts a server on a free loopback port and waits for its API.
    pub fn start() -> Result<Toxiproxy> {
        let port = free_port()?;
        let child = Command::new(controlplane::binary_path()?)
            .args([
                "toxiproxy",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .context("starting toxiproxy (operon-controlplane toxiproxy)")?;
        let proxy = Toxiproxy {
            api: format!("127.0.0.1:{port}"),
            child,
        };
        let start = Instant::now();
        while proxy.request("GET", "/version", None).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                bail!("toxiproxy did not answer on {} within 20 s", proxy.api);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(proxy)
    }

    /// A proxy named `name` to `upstream` (`host:port`), on a free port.
    pub fn proxy(&self, name: &str, upstream: &str) -> Result<Proxy> {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let body = format!(r#"{{"name":"{name}","listen":"{listen}","upstream":"{upstream}"}}"#);
        self.request("POST", "/proxies", Some(&body))?;
        Ok(Proxy {
            name: name.into(),
            listen,
        })
    }

    /// Adds a toxic: `kind` (`latency`, `bandwidth`, `reset_peer`,
    /// `timeout`, `slow_close`...) with its attributes as JSON, downstream
    /// (toward the client) unless `upstream`.
    pub fn add(
        &self,
        proxy: &Proxy,
        name: &str,
        kind: &str,
        upstream: bool,
        attributes: &str,
    ) -> Result<()> {
        let stream = if upstream { "upstream" } else { "downstream" };
        let body = format!(
            r#"{{"name":"{name}","type":"{kind}","stream":"{stream}","toxicity":1.0,"attributes":{attributes}}}"#
        );
        self.request(
            "POST",
            &format!("/proxies/{}/toxics", proxy.name),
            Some(&body),
        )?;
        Ok(())
    }

    /// Removes a toxic.
    pub fn remove(&self, proxy: &Proxy, name: &str) -> Result<()> {
        self.request(
            "DELETE",
            &format!("/proxies/{}/toxics/{name}", proxy.name),
            None,
        )?;
        Ok(())
    }

    /// Turns the proxy off (every connection dropped, new ones refused) or
    /// on again.
    pub fn enable(&self, proxy: &Proxy, enabled: bool) -> Result<()> {
        let body = format!(r#"{{"enabled":{enabled}}}"#);
        self.request("POST", &format!("/proxies/{}", proxy.name), Some(&body))?;
        Ok(())
    }

    fn request(&self, method: &str, path: &str, body: Option<&str>) -> Result<String> {
        let mut s = TcpStream::connect(&self.api)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: toxiproxy\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        let status: u16 = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("toxiproxy answered {answer:?}"))?;
        if !(200..300).contains(&status) {
            bail!("toxiproxy {method} {path}: {answer}");
        }
        Ok(answer)
    }
}

impl Drop for Toxiproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of `kubeconfig` (in `dir`) whose server is `listen`: the same
/// cluster, reached through the proxy. The API server's certificate names
/// 127.0.0.1, so TLS still verifies.
pub fn kubeconfig_through(kubeconfig: &Path, listen: &str, dir: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(kubeconfig)?;
    let mut replaced = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| match l.trim_start().strip_prefix("server: ") {
            Some(_) => {
                replaced += 1;
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}server: https://{listen}")
            }
            None => l.to_string(),
        })
        .collect();
    if replaced != 1 {
        bail!(
            "{}: expected one server line, found {replaced}",
            kubeconfig.display()
        );
    }
    let path = dir.join("through-proxy.kubeconfig");
    std::fs::write(&path, out.join("\n") + "\n")?;
    Ok(path)
}

/// The `host:port` of the API server a kubeconfig names.
pub fn server_of(kubeconfig: &Path) -> Result<String> {
    let text = std::fs::read_to_string(kubeconfig)?;
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("server: https://"))
        .map(|s| s.trim().to_string())
        .with_context(|| format!("no https server in {}", kubeconfig.display()))
}
