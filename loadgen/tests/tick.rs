//! `--tick`: the dispatcher wakes once per tick and sends everything due by then. Checked at
//! a raw TCP server that notes when each request arrives (bursts on tick boundaries instead
//! of an even stream, and nothing lost at the end of the run), and in the report's schedule
//! lag on both dispatch paths (the paced engine for plain HTTP/1.1, the async loop for HTTP/2).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use loadgen::RunConfig;
use tokio::net::TcpListener;

const TICK: Duration = Duration::from_millis(50);

/// Answers `200 {}` to every request and notes when each head arrived.
async fn stamping_server() -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&arrivals);
    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
    support::serve_raw(listener, answer, Duration::ZERO, false, move |_| {
        seen.lock().expect("lock").push(Instant::now());
    });
    (format!("http://{addr}"), arrivals)
}

/// 100 food orders a second, evenly spaced (10 ms apart), for one second.
fn config(url: String, tick: Duration) -> RunConfig {
    let mut cfg = RunConfig::constant(Some(url), 100.0, 0.0);
    cfg.duration = Some(Duration::from_secs(1));
    cfg.tick = tick;
    cfg
}

/// Runs of arrivals with less than half a tick between neighbours.
fn bursts(arrivals: &[Instant]) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    1 + sorted.windows(2).filter(|w| w[1] - w[0] > TICK / 2).count()
}

#[tokio::test]
async fn requests_arrive_in_one_burst_per_tick_and_none_is_lost_at_the_end() {
    for (tick, want) in [(Duration::ZERO, 1..=1), (TICK, 15..=22)] {
        let (url, arrivals) = stamping_server().await;
        let report = loadgen::run(config(url, tick), std::future::pending())
            .await
            .expect("run");
        assert_eq!(report.stopped_by, "duration");
        // The last one is due at 0.99 s, its tick boundary is the end: it still goes out.
        assert_eq!(report.total.sent, 100, "tick {tick:?}");
        assert_eq!(report.total.skipped, 0, "tick {tick:?}");
        assert_eq!(report.total.ok, 100, "tick {tick:?}");
        let arrivals = arrivals.lock().expect("lock").clone();
        assert_eq!(arrivals.len(), 100, "tick {tick:?}");
        // Sent on time, 10 ms apart, they form one unbroken stream; held to 50-ms ticks they
        // come as about 20 bursts of 5.
        let n = bursts(&arrivals);
        assert!(want.contains(&n), "tick {tick:?}: {n} bursts");
    }
}

async fn lag_stays_within_a_tick(http2: bool) {
    let (url, stop) = support::order_server().await;
    let mut cfg = config(url, TICK);
    cfg.client.http2 = http2;
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    assert_eq!(report.total.ok, 100);
    let lag = &report.total.schedule_lag;
    // Due times 10 ms apart wait for 50-ms boundaries: 0 to 40 ms late, 20 ms in the middle.
    assert!(lag.p50_ms >= 10.0, "held to ticks: p50 {} ms", lag.p50_ms);
    assert!(
        lag.max_ms < 50.0 + 30.0,
        "at most a tick late: max {} ms",
        lag.max_ms
    );
    stop.shutdown().await;
}

#[tokio::test]
async fn the_engine_sends_within_a_tick_of_the_due_time() {
    lag_stays_within_a_tick(false).await;
}

/// `--http2` takes the async dispatcher instead of the engine.
#[tokio::test]
async fn the_async_dispatcher_does_too() {
    lag_stays_within_a_tick(true).await;
}
