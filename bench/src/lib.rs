//! Benchmark baselines for `bench/run`: the `bare-hyper` binary (the same hyper 1.x server
//! set-up as the order server with nothing else: no routing, no metrics, no simulation), and
//! the criterion micro-benchmarks in `benches/` (instrumentation cost per record, `/metrics`
//! render time by series count), `scrape-timing` (how long a steady scraper waits for
//! `/metrics` with and without the order server's scrape cache), and [`recorder_with_series`],
//! the synthetic series both render measurements use; [`paced`] holds what the two floor
//! clients share. Nothing here is part of the product.

pub mod paced;

use metrics::{Key, Label, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use order_server::contract::LATENCY_BUCKETS;

static META: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);

/// A recorder exporting about `series` sample lines, a realistic mix: per 20 lines, one
/// histogram with the contract's 15 latency buckets (17 lines) and three counters.
pub fn recorder_with_series(series: usize) -> PrometheusRecorder {
    let r = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .unwrap_or_else(|_| unreachable!("the contract's buckets are not empty"))
        .build_recorder();
    let groups = series.div_ceil(20);
    for g in 0..groups {
        let labels = |k: usize| {
            vec![
                Label::new("route", format!("/route{g}")),
                Label::new("status", format!("{}", 200 + k)),
            ]
        };
        let h = r.register_histogram(&Key::from_parts("bench_duration_seconds", labels(0)), &META);
        for i in 0..50 {
            h.record(0.001 * f64::from(i));
        }
        for k in 0..3 {
            r.register_counter(&Key::from_parts("bench_requests_total", labels(k)), &META)
                .increment(g as u64 + 1);
        }
    }
    r.handle().run_upkeep();
    r
}
