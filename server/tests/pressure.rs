//! The server binary under more load than it can take, and stopped while under load, driven
//! by the real load generator over loopback. A child process, so that its memory, its signal
//! handling and its exit code are the real ones.

#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use loadgen::RunConfig;
use order_server::exposition::Exposition;
use std::process::Command;
use support::{rss_bytes, spawn_server, wait_for_exit};

fn run_config(addr: SocketAddr, food: f64, clothing: f64, duration: Duration) -> RunConfig {
    let mut cfg = RunConfig::constant(Some(format!("http://{addr}")), food, clothing);
    cfg.duration = Some(duration);
    cfg.client.timeout = Duration::from_secs(2);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twice_the_capacity_is_shed_with_503_while_health_and_metrics_stay_fast() {
    // 20 order slots x 100 ms per order = 200 orders/s of capacity; offer 400/s.
    let (mut child, addr, _log) = spawn_server(&[
        "--food-latency",
        "100ms",
        "--clothing-latency",
        "100ms",
        "--latency-sigma",
        "0.05",
        "--load-knee",
        "100000",
        "--error-rate",
        "0",
        "--max-in-flight",
        "20",
    ]);
    let pid = child.id();
    let run = tokio::spawn(loadgen::run(
        run_config(addr, 200.0, 200.0, Duration::from_secs(4)),
        std::future::pending(),
    ));

    let probe = reqwest::Client::new();
    let mut worst_health = Duration::ZERO;
    let mut worst_metrics = Duration::ZERO;
    let mut max_in_flight: f64 = 0.0;
    let mut max_rss = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(3800) {
        let t = Instant::now();
        let r = probe
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect("healthz during overload");
        assert_eq!(r.status(), 200);
        worst_health = worst_health.max(t.elapsed());
        let t = Instant::now();
        let text = probe
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("metrics during overload")
            .text()
            .await
            .expect("body");
        worst_metrics = worst_metrics.max(t.elapsed());
        let m = Exposition::parse(&text).expect("exposition");
        max_in_flight = max_in_flight.max(
            m.value(order_server::contract::HTTP_IN_FLIGHT, &[])
                .unwrap_or_default(),
        );
        max_rss = max_rss.max(rss_bytes(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = run.await.expect("task").expect("run");
    let _ = child.kill();
    let _ = child.wait();

    let o = &report.total.outcomes;
    let count = |k: &str| o.get(k).copied().unwrap_or(0);
    eprintln!(
        "offered {} sent {} outcomes {o:?}; worst healthz {worst_health:?}, metrics {worst_metrics:?}; max in flight {max_in_flight}; max RSS {} KiB",
        report.total.scheduled,
        report.total.sent,
        max_rss / 1024
    );
    // Everything was answered, quickly, with a clear status: nothing hung or timed out.
    assert_eq!(count("timeout"), 0, "{o:?}");
    assert_eq!(count("other"), 0, "{o:?}");
    assert_eq!(count("connect_error"), 0, "{o:?}");
    assert_eq!(count("2xx") + count("5xx"), report.total.sent, "{o:?}");
    // Roughly the capacity was served, the rest was shed.
    let served = count("2xx") as f64 / report.duration_seconds;
    assert!((120.0..=260.0).contains(&served), "served {served}/s");
    assert!(
        count("5xx") as f64 > 0.25 * report.total.sent as f64,
        "{o:?}"
    );
    assert!(
        worst_health < Duration::from_millis(250),
        "{worst_health:?}"
    );
    assert!(
        worst_metrics < Duration::from_millis(500),
        "{worst_metrics:?}"
    );
    // Work in progress is bounded by the slots (plus shed answers and the probes in flight).
    assert!(max_in_flight <= 40.0, "{max_in_flight}");
    assert!(max_rss > 0 && max_rss < 64 << 20, "RSS {max_rss}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_completes_accepted_requests_and_exits_zero() {
    let (mut child, addr, log) = spawn_server(&["--drain-timeout", "5s", "--error-rate", "0"]);
    let run = tokio::spawn(loadgen::run(
        run_config(addr, 50.0, 50.0, Duration::from_secs(4)),
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = wait_for_exit(&mut child, Duration::from_secs(7))
        .expect("still running 7 s after SIGTERM (drain time 5 s)");
    let stopped_after = signalled.elapsed();
    let report = run
        .await
        .expect("task")
        .expect("the load generator reports, not crashes");
    let lines: Vec<String> = log.try_iter().collect();

    let o = &report.total.outcomes;
    let count = |k: &str| o.get(k).copied().unwrap_or(0);
    eprintln!("exit {exit:?} {stopped_after:?} after SIGTERM; outcomes {o:?}");
    assert!(exit.success(), "exit {exit:?}; log {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("SIGTERM received")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("all in-flight requests answered")),
        "{lines:?}"
    );
    // Requests sent before the signal were answered 2xx; after it nothing was listening.
    assert!(count("2xx") >= 140, "{o:?}");
    assert!(count("connect_error") > 0, "{o:?}");
    assert_eq!(
        count("5xx") + count("4xx") + count("timeout") + count("other"),
        0,
        "{o:?}"
    );
    assert_eq!(count("2xx") + count("connect_error"), report.total.sent);
}
