//! What one record costs, to show where per-request time goes: a pre-registered exporter
//! handle, the `histogram!` macro with a label lookup, an HdrHistogram record, and the order
//! server's whole per-request telemetry (HTTP counter and histogram, order counters,
//! processing time, amount, items, orders today).

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use metrics::Recorder;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use order_server::contract::{OrderStatus, OrderType, Route, LATENCY_BUCKETS};
use order_server::telemetry::Telemetry;

fn records(c: &mut Criterion) {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("h".into()), LATENCY_BUCKETS)
        .expect("buckets")
        .build_recorder();
    static META: metrics::Metadata<'static> =
        metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
    let key = metrics::Key::from_parts("h", vec![metrics::Label::new("order_type", "food")]);
    let handle = recorder.register_histogram(&key, &META);
    c.bench_function("exporter histogram, pre-registered handle", |b| {
        b.iter(|| handle.record(black_box(0.031)))
    });
    metrics::with_local_recorder(&recorder, || {
        c.bench_function("histogram! macro with a label lookup", |b| {
            b.iter(|| metrics::histogram!("h", "order_type" => "food").record(black_box(0.031)))
        });
    });
    let mut hdr = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hdr");
    c.bench_function("hdrhistogram record", |b| {
        b.iter(|| hdr.record(black_box(31_000)).expect("in range"))
    });
    let t = Telemetry::new().expect("telemetry");
    c.bench_function("order server telemetry for one order", |b| {
        b.iter(|| {
            t.set_in_flight(1);
            t.order_received(OrderType::Food);
            t.processing_time(OrderType::Food, Duration::from_micros(31));
            t.order_processed(OrderType::Food, OrderStatus::Success);
            t.set_order_today(OrderType::Food, 7);
            t.order_amount(OrderType::Food, 74.2, 2);
            t.http_request("GET", Route::FoodOrder, 200, Duration::from_micros(40));
            t.set_in_flight(0);
        })
    });
    // Upkeep drains buffered samples; without it this bench would measure memory growth.
    t.run_upkeep();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = records
}
criterion_main!(benches);
