//! A plugin's stdout and stderr: kept in memory up to a bound, then handed to
//! `tracing` after the call.
//!
//! The bound protects the host from a plugin that prints without end. Past
//! it, writes still succeed (a chatty plugin must not fail its reconcile for
//! printing) but are dropped and counted, and the count is logged.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: usize,
}

/// One captured output stream, shared between the guest's stream handles
/// and the host that reads it after the call.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    capacity: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl CapturedOutput {
    pub fn new(capacity: usize) -> CapturedOutput {
        CapturedOutput {
            capacity,
            buffer: Arc::default(),
        }
    }

    fn append(&self, bytes: &[u8]) {
        let mut buf = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.capacity.saturating_sub(buf.kept.len());
        let take = room.min(bytes.len());
        buf.kept.extend_from_slice(&bytes[..take]);
        buf.dropped += bytes.len() - take;
    }

    /// The plugin's last words, without consuming anything: the last
    /// non-empty line, joined to the line before it when that one says
    /// where a panic happened (Rust prints the location and the message on
    /// two lines, then a `note:` about backtraces, which is skipped).
    pub fn last_line(&self) -> Option<String> {
        let buf = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&buf.kept);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        let (last, before) = match lines.as_slice() {
            [] => return None,
            [.., before, last] => (*last, Some(*before)),
            [last] => (*last, None),
        };
        Some(match before {
            Some(b) if b.contains("panicked at") && !last.contains("panicked at") => {
                format!("{b} {last}")
            }
            _ => last.to_string(),
        })
    }

    /// The text kept so far and how many bytes were dropped past the bound.
    pub fn take(&self) -> (String, usize) {
        let mut buf = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = std::mem::take(&mut buf.kept);
        let dropped = std::mem::take(&mut buf.dropped);
        (String::from_utf8_lossy(&kept).into_owned(), dropped)
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Largest write the guest is offered at once.
const PERMIT: usize = 64 << 10;

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_bound_and_counts_the_rest() {
        let out = CapturedOutput::new(5);
        let mut stream = out.p2_stream();
        stream.write(Bytes::from_static(b"hello world")).unwrap();
        stream.write(Bytes::from_static(b"!")).unwrap();
        assert_eq!(out.take(), ("hello".to_string(), 7));
        assert_eq!(out.take(), (String::new(), 0));
    }

    #[test]
    fn last_line_joins_a_rust_panic_location_and_message() {
        let out = CapturedOutput::new(1024);
        out.append(b"starting\nthread 'main' panicked at src/lib.rs:3:5:\nboom\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n");
        assert_eq!(
            out.last_line().unwrap(),
            "thread 'main' panicked at src/lib.rs:3:5: boom"
        );
        let quiet = CapturedOutput::new(16);
        assert_eq!(quiet.last_line(), None);
    }
}
