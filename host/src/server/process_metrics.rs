//! What the host process holds, read at each scrape (a `prometheus-client`
//! collector): the figures a leak shows in first, under the names the
//! Prometheus client libraries give them, so existing dashboards and
//! alerts work unchanged.
//!
//! - `process_resident_memory_bytes`, `process_open_fds`: from `/proc/self`
//!   (absent where there is none);
//! - `operon_runtime_tasks`: tokio tasks alive (watches, controllers,
//!   servers, reconciles in flight).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// Off until the host turns it on ([`super::Metrics::watch_process`]):
/// a registry of a unit test renders only what the test touched.
#[derive(Debug, Clone, Default)]
pub struct ProcessCollector(pub Arc<AtomicBool>);

/// `VmRSS` of `/proc/self/status` (in kB there, whatever the page size).
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<i64>,
) -> Result<(), std::fmt::Error> {
    let Some(value) = value else {
        return Ok(());
    };
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.0.load(Ordering::Relaxed) {
            return Ok(());
        }
        gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            resident_bytes(),
        )?;
        gauge(
            &mut encoder,
            "process_open_fds",
            "Number of open file descriptors",
            open_fds(),
        )?;
        let tasks = tokio::runtime::Handle::try_current()
            .ok()
            .map(|h| h.metrics().num_alive_tasks() as i64);
        gauge(
            &mut encoder,
            "operon_runtime_tasks",
            "Tokio tasks alive in the host (a number that only grows is a leak)",
            tasks,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_this_process() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector(Arc::new(true.into()))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let value = |name: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0, "stdin, stdout, stderr");
        assert!(value("operon_runtime_tasks") >= 0.0);
    }
}
