//! A TCP relay that can make its open connections die silently: each stops
//! carrying bytes, both ways, and is never closed — what a NAT or a
//! firewall that forgets a connection does — while new connections go
//! through. Toxiproxy's toxics act on every connection of a proxy, new
//! ones too, and its faults are all visible to one side sooner or later
//! (a close, a reset, corrupt TLS once data flows again); this one never
//! is, which is the case only a client-side timeout catches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The relay, stopped when dropped.
pub struct Relay {
    pub listen: String,
    /// Connections accepted before this generation are frozen.
    frozen_before: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(upstream: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap().to_string();
        let (frozen_before, generation) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (frozen, gen_) = (frozen_before.clone(), generation.clone());
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let born = gen_.load(Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, born, frozen.clone()));
                tokio::spawn(pipe(sr, cw, born, frozen.clone()));
            }
        });
        Relay {
            listen,
            frozen_before,
            generation,
            task,
        }
    }

    /// Every connection open now goes silent for good; later ones work.
    pub fn freeze_open_connections(&self) {
        let next = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.frozen_before.store(next, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    born: u64,
    frozen_before: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if born < frozen_before.load(Ordering::SeqCst) {
            // Silent: hold both halves open, carry nothing, ever.
            let _held = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
