//! `loadgen capacity` against a service whose capacity is known: the order server with
//! `--workers 1 --service-time 4ms`, one worker serving orders first come, first served (a
//! single-server FIFO queue). The truth is computed, not assumed:
//!
//! - The service time each order holds the worker under load, S, is measured: 32 clients
//!   keep the worker busy for 3 s, and S = 1 / throughput (the timer's rounding is in it as
//!   it will be during the search: each order's sleep starts when the previous one ends).
//!   The path outside the queue (parsing, loopback) is the median time of `/healthz`,
//!   which skips the queue.
//! - Poisson arrivals at rate λ into one FIFO server of fixed service time (M/D/1):
//!   Lindley's recursion, W(n+1) = max(0, W(n) + S − A(n+1)), with A exponential, gives each
//!   order's time in the system W + S plus the path outside. Over 200,000 simulated orders
//!   its percentiles are those the search will see at λ.
//! - The knee λ* is the rate where that percentile reaches the threshold (p90 < 40 ms: a
//!   step of six seconds estimates a p90 from about a hundred slow samples, a p99 from ten,
//!   and near the knee a noisy estimate moves the answer), found by bisection with the same
//!   random numbers at every λ, so the percentile only grows with λ.
//!
//! The search must answer within ±10 % of λ*, and never above the saturation rate 1/mean(S).
//! A second case makes the generator the limit (two requests in flight against a slow
//! target): the answer must say so instead of naming a capacity.

#![cfg(unix)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use order_server::config::QueueModel;
use serde_json::Value;

/// The searches here run one at a time: a second search's load on the two cores would
/// slow the first one's server and generator.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Client-side times of `n` sequential GETs of `path`, in seconds.
async fn sequential(url: &str, n: usize) -> Vec<f64> {
    let client = reqwest::Client::new();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).send().await.expect("answer");
        let _ = r.bytes().await;
        out.push(t.elapsed().as_secs_f64());
    }
    out
}

/// Orders a second one worker serves when it is never idle: 32 clients in a closed loop for
/// 3 s, after a second of the same to fill the queue.
async fn saturated(url: &str) -> f64 {
    let client = reqwest::Client::new();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let (from, until) = (
        start + Duration::from_secs(1),
        start + Duration::from_secs(4),
    );
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, url, done) = (client.clone(), url.to_string(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let ok = client.get(&url).send().await.is_ok();
                if ok && Instant::now() > from && Instant::now() < until {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(std::sync::atomic::Ordering::Relaxed) as f64 / 3.0
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// xorshift64*: the simulation's own random numbers, the same at every rate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The `q` quantile of the time in system of a FIFO single-server queue at `rate` with
/// service times drawn from `service`, plus `outside` (the path that does not queue).
fn simulated(q: f64, rate: f64, service: &[f64], outside: f64) -> f64 {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (warm, n) = (10_000, 200_000);
    let mut wait = 0.0_f64;
    let mut times = Vec::with_capacity(n);
    for k in 0..warm + n {
        let s = service[(rng.next() * service.len() as f64) as usize % service.len()];
        if k >= warm {
            times.push(wait + s + outside);
        }
        let gap = -(1.0 - rng.next()).ln() / rate;
        wait = (wait + s - gap).max(0.0);
    }
    quantile(times, q)
}

fn run_capacity(args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("capacity")
        .args(args)
        .args(["--output", "json", "--log", "error"])
        .output()
        .expect("run loadgen capacity");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), report, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capacity_found_is_the_queue_s_knee_within_ten_percent() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut config = support::quiet_config();
    config.queue = Some(QueueModel {
        workers: 1,
        service_time: Duration::from_millis(4),
    });
    let server = support::TestServer::start(config).await;
    let base = format!("http://{}", server.addr);
    let _ = sequential(&format!("{base}/makeFoodOrder"), 20).await;
    let outside = quantile(sequential(&format!("{base}/healthz"), 400).await, 0.5);
    let saturation = saturated(&format!("{base}/makeFoodOrder")).await;
    let mean = 1.0 / saturation;
    let service = vec![mean];
    let slo = 0.040;
    let (mut lo, mut hi) = (0.2 * saturation, 0.999 * saturation);
    for _ in 0..30 {
        let mid = (lo + hi) / 2.0;
        if simulated(0.9, mid, &service, outside) <= slo {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let knee = lo;
    eprintln!(
        "service time under load {:.2} ms (saturation {saturation:.1}/s); outside the queue {:.2} ms; knee for p90<40ms {knee:.1}/s ({:.0} % of saturation)",
        mean * 1e3,
        outside * 1e3,
        100.0 * knee / saturation
    );

    let start = format!("{:.1}", knee / 4.0);
    let (code, report, stderr) = run_capacity(&[
        "--target",
        &base,
        "--food-rate",
        "2",
        "--clothing-rate",
        "1",
        "--threshold",
        "p90<40ms",
        "--start-rate",
        &start,
        "--step",
        "10s",
        "--warmup",
        "2s",
        "--generator-lag",
        "20ms",
        "--max-duration",
        "4m",
    ]);
    let c = &report["capacity"];
    let rate = c["rate"]
        .as_f64()
        .unwrap_or_else(|| panic!("{report}\n{stderr}"));
    eprintln!(
        "found {rate:.1}/s (interval {} to {}), {} steps: {}",
        c["lower"],
        c["upper"],
        report["steps"].as_array().map_or(0, Vec::len),
        stderr.trim()
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(c["found"], true, "{c}");
    assert_eq!(c["bounded_by"], "p90<40ms");
    assert!(
        (rate - knee).abs() <= 0.10 * knee,
        "found {rate:.1}/s, the knee is {knee:.1}/s: {report}"
    );
    assert!(
        rate <= saturation,
        "{rate} over the saturation {saturation}"
    );
    let steps = report["steps"].as_array().expect("steps");
    assert!(
        steps.iter().all(|s| s["verdict"] != "generator_limited"),
        "{report}"
    );
    // A step far past the knee has failed beyond recovery within a tick or two.
    for s in steps {
        if s["asked_rate"].as_f64().unwrap_or(0.0) > 1.3 * knee {
            assert_eq!(s["ended_early"], true, "an overload step ends early: {s}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_that_cannot_keep_up_is_named_as_the_limit() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 100 workers of 50 ms: 2,000 orders a second. Two requests in flight carry 40 a second.
    let mut config = support::quiet_config();
    config.queue = Some(QueueModel {
        workers: 100,
        service_time: Duration::from_millis(50),
    });
    let server = support::TestServer::start(config).await;
    let (code, report, stderr) = run_capacity(&[
        "--target",
        &format!("http://{}", server.addr),
        "--threshold",
        "p99<1s",
        "--arrivals",
        "uniform",
        "--start-rate",
        "10",
        "--max-in-flight",
        "2",
        "--step",
        "4s",
        "--warmup",
        "1s",
        "--generator-lag",
        "20ms",
    ]);
    let c = &report["capacity"];
    assert_eq!(c["bounded_by"], "generator", "{report}\n{stderr}");
    assert_eq!(c["found"], false);
    let steps = report["steps"].as_array().expect("steps");
    let last = steps.last().expect("a step");
    assert_eq!(last["verdict"], "generator_limited");
    // Evenly spaced, 10/s and 20/s fit in two 50 ms slots; 80/s cannot.
    assert!(
        last["asked_rate"].as_f64().unwrap_or(0.0) >= 40.0,
        "{report}"
    );
    assert!(c["lower"].as_f64().is_some_and(|l| l >= 10.0), "{report}");
    assert_eq!(code, Some(0), "a lower bound was found: {stderr}");
}

#[test]
fn usage_errors_and_an_unreachable_target_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["capacity", "--threshold", "error_ratio<0.01"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("latency threshold"));
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "capacity",
            "--threshold",
            "p99<1s",
            "--step",
            "2s",
            "--warmup",
            "1s",
        ])
        .args(["--target", &format!("http://127.0.0.1:{port}")])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing answered"), "{err}");
}
