//! The compile cache's counters as metrics, read from the engine's atomics
//! at each scrape (a `prometheus-client` collector): the engine does not
//! know about metrics, and the counters exist before the registry does.
//!
//! - `operon_compile_cache_loads_total{result="hit"|"compiled"}`
//! - `operon_compile_cache_rejected_total{reason}`: artifacts refused before
//!   loading (`truncated`, `integrity`, `unreadable`, `incompatible`)
//! - `operon_compile_cache_write_failures_total`

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

use crate::engine::{CacheCounters, Rejection};

/// The engine's counters, once the host has handed them over.
#[derive(Debug, Clone, Default)]
pub struct CacheCollector(pub Arc<OnceLock<Arc<CacheCounters>>>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(c) = self.0.get() else {
            return Ok(());
        };
        let count = ConstCounter::new(0u64);
        let mut loads = encoder.encode_descriptor(
            "operon_compile_cache_loads",
            "Components loaded from the compile cache (hit) or compiled",
            None,
            count.metric_type(),
        )?;
        for (result, n) in [("hit", &c.hits), ("compiled", &c.compiled)] {
            let labels = ResultLabel { result };
            ConstCounter::new(n.load(Ordering::Relaxed)).encode(loads.encode_family(&labels)?)?;
        }
        let mut rejected = encoder.encode_descriptor(
            "operon_compile_cache_rejected",
            "Cached artifacts refused before any of their code was loaded, by reason",
            None,
            count.metric_type(),
        )?;
        for why in Rejection::ALL {
            let labels = ReasonLabel {
                reason: why.label(),
            };
            ConstCounter::new(c.rejected(why)).encode(rejected.encode_family(&labels)?)?;
        }
        let failures = encoder.encode_descriptor(
            "operon_compile_cache_write_failures",
            "Compiled artifacts (or the integrity key) that could not be written",
            None,
            count.metric_type(),
        )?;
        ConstCounter::new(c.write_failures.load(Ordering::Relaxed)).encode(failures)
    }
}
