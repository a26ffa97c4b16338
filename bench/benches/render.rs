//! `/metrics` render time by series count (100, 1k, 10k), the way the order server renders
//! (`PrometheusHandle::render` into a fresh String) against rendering into a reused buffer
//! (`render_to_write`). Series are a realistic mix: per 20 series, one histogram with the
//! contract's 15 latency buckets (17 sample lines) and three counters.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use order_metrics_bench::recorder_with_series as recorder;

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    for n in [100usize, 1_000, 10_000] {
        let r = recorder(n);
        let lines = r
            .handle()
            .render()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count();
        eprintln!("{n} requested: {lines} sample lines");
        group.bench_with_input(
            BenchmarkId::new("render() into a new String", n),
            &n,
            |b, _| b.iter(|| r.handle().render()),
        );
        let mut buf = Vec::with_capacity(1 << 20);
        group.bench_with_input(
            BenchmarkId::new("render_to_write() into a reused buffer", n),
            &n,
            |b, _| {
                b.iter(|| {
                    buf.clear();
                    r.handle().render_to_write(&mut buf).expect("render");
                    buf.len()
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = render
}
criterion_main!(benches);
