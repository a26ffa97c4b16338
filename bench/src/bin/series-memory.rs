//! The load generator's memory over a long run, in simulated time: every second of the run,
//! `rate` requests go through the load generator's own recorder (scheduled, sent with a lag,
//! completed with corrected and service latencies spread from 1 ms to about a second, one in
//! fifty a 5xx), and the time-series sampler takes the second as the run's tick does; at the
//! end the report is built and rendered as JSON and HTML, as a run ends. No network and no
//! clock: an hour takes seconds. Prints one JSON line with the peak RSS (VmHWM).
//!
//!     series-memory [SECONDS [RATE]] [--no-series]

use std::time::{Duration, Instant};

use loadgen::dispatch::StopReason;
use loadgen::outcome::OutcomeClass;
use loadgen::recorder::Recorder;
use loadgen::report::{Report, Thresholds};
use loadgen::sampler::Sampler;
use loadgen::schedule::{Plan, Profile, Shape};
use order_server::contract::OrderType;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let series = !args.iter().any(|a| a == "--no-series");
    let mut numbers = args.iter().filter_map(|a| a.parse::<u64>().ok());
    let seconds = numbers.next().unwrap_or(3600);
    let rate = numbers.next().unwrap_or(2000);
    let began = Instant::now();
    let plan = Plan::single(Profile {
        shape: Shape::Constant,
        rates: [rate as f64 * 2.0 / 3.0, rate as f64 / 3.0],
        flash_sales: None,
    });
    let recorder = Recorder::new(None, series);
    let mut sampler = series.then(|| Sampler::new(plan.clone(), 1.0));
    // xorshift: a fixed, cheap spread of latencies.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for s in 1..=seconds {
        for i in 0..rate {
            let t = if i % 3 == 2 {
                OrderType::Clothing
            } else {
                OrderType::Food
            };
            let r = next();
            recorder.scheduled(t);
            recorder.sent(t, Duration::from_micros(20 + r % 300));
            // Mostly milliseconds, a tail to about a second.
            let service =
                Duration::from_micros(1000 + (r >> 16) % 20_000 + ((r >> 40) % 64).pow(3) * 4);
            let class = if (r >> 8) % 50 == 0 {
                OutcomeClass::ServerError
            } else {
                OutcomeClass::Success
            };
            recorder.completed(t, class, service + Duration::from_micros(r % 500), service);
        }
        if let Some(sampler) = &mut sampler {
            sampler.tick(s as f64, &recorder.take_window());
        }
    }
    let end = seconds as f64 + 0.5;
    let (stats, last) = recorder.close();
    let series_out = sampler.map(|s| s.finish(end, end, &last));
    let points = series_out.as_ref().map_or(0, |s| s.len());
    let mut report = Report::build(
        "http://127.0.0.1:1/".into(),
        None,
        StopReason::Duration,
        Duration::from_secs_f64(end),
        &stats,
        [rate as f64 * 2.0 / 3.0, rate as f64 / 3.0],
        &Thresholds::default(),
    );
    report.series = series_out;
    let mut json = Vec::new();
    report.write_json(&mut json).expect("JSON into memory");
    let mut html = Vec::new();
    loadgen::html::write(&report, &mut html).expect("HTML into memory");
    println!(
        "{{\"seconds\": {seconds}, \"rate\": {rate}, \"series\": {series}, \"points\": {points}, \"requests\": {}, \"json_bytes\": {}, \"html_bytes\": {}, \"max_rss_kib\": {}, \"took_seconds\": {:.2}}}",
        report.total.completed,
        json.len(),
        html.len(),
        peak_rss_kib(),
        began.elapsed().as_secs_f64()
    );
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
