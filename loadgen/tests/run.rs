//! Runs against the real order server on 127.0.0.1:0: counts per type, agreement with the
//! server's own counters (over plain HTTP/1.1, the paced engine's path, and over HTTP/2, the
//! async path), a closed port, and thresholds deciding the exit code.

use std::time::Duration;

mod support;

use loadgen::report::Thresholds;
use loadgen::RunConfig;
use order_server::exposition::Exposition;

#[tokio::test]
async fn sends_the_scheduled_count_and_the_server_agrees() {
    sends_and_the_server_agrees(false).await;
}

/// `--http2` takes the async dispatcher and reqwest (as https does) instead of the engine.
#[tokio::test]
async fn over_http2_too() {
    sends_and_the_server_agrees(true).await;
}

async fn sends_and_the_server_agrees(http2: bool) {
    let (url, stop) = support::order_server().await;
    let mut cfg = RunConfig::constant(Some(url.clone()), 100.0, 50.0);
    cfg.duration = Some(Duration::from_secs(2));
    cfg.client.http2 = http2;
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    assert_eq!(report.stopped_by, "duration");
    assert!(
        (198..=201).contains(&report.food.sent),
        "food {}",
        report.food.sent
    );
    assert!(
        (99..=101).contains(&report.clothing.sent),
        "clothing {}",
        report.clothing.sent
    );
    assert_eq!(report.total.ok, report.total.sent);
    assert_eq!(loadgen::exit_code(&report), loadgen::exit::OK);

    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let m = Exposition::parse(&text).expect("parse");
    let served = |t| {
        m.value(
            "order_service_processed_orders_total",
            &[("order_type", t), ("status", "success")],
        )
    };
    assert_eq!(served("food"), Some(report.food.ok as f64));
    assert_eq!(served("clothing"), Some(report.clothing.ok as f64));
    stop.shutdown().await;
}

#[tokio::test]
async fn a_closed_port_is_reported_as_connect_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut cfg = RunConfig::constant(Some(format!("http://127.0.0.1:{port}")), 50.0, 0.0);
    cfg.requests = Some(20);
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    assert_eq!(report.total.outcomes["connect_error"], 20);
    assert!(!report.target_reached);
    assert_eq!(loadgen::exit_code(&report), loadgen::exit::ERROR);
    assert_eq!(
        report.unreached().as_deref(),
        Some("the target was never reached: 20 of 20 requests failed to connect")
    );
}

#[tokio::test]
async fn thresholds_decide_the_exit_code() {
    let (url, stop) = support::order_server().await;
    let mut cfg = RunConfig::constant(Some(url), 50.0, 50.0);
    cfg.requests = Some(50);
    cfg.thresholds = Thresholds {
        max_error_ratio: Some(0.01),
        max_p99: Some(Duration::from_secs(5)),
        exprs: Vec::new(),
    };
    let report = loadgen::run(cfg.clone(), std::future::pending())
        .await
        .expect("run");
    assert_eq!(report.stopped_by, "requests");
    assert_eq!(report.total.scheduled, 50);
    assert_eq!(
        loadgen::exit_code(&report),
        loadgen::exit::OK,
        "{:?}",
        report.thresholds
    );

    cfg.thresholds.max_p99 = Some(Duration::from_nanos(1));
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    assert_eq!(loadgen::exit_code(&report), loadgen::exit::THRESHOLD);
    let mut json = Vec::new();
    report.write_json(&mut json).expect("json");
    let v: serde_json::Value = serde_json::from_slice(&json).expect("valid json");
    for field in [
        "schema_version",
        "food",
        "clothing",
        "total",
        "thresholds",
        "passed",
        "duration_seconds",
    ] {
        assert!(v.get(field).is_some(), "report field {field}");
    }
    stop.shutdown().await;
}

#[test]
fn binary_exits_2_on_bad_flags_without_panicking() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--food-rate", "lots"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--food-rate") && !err.contains("panicked"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stall_shows_in_corrected_latency_not_in_service_time() {
    let stop = support::TestServer::start_with_admin(support::quiet_config(), true).await;
    let addr = stop.addr;
    let r = reqwest::Client::new()
        .post(stop.admin_url())
        .json(&serde_json::json!({"kind": "stall", "order_type": "food", "duration": "1s"}))
        .send()
        .await
        .expect("inject");
    assert_eq!(r.status(), 201);
    // One connection: requests due during the stall wait in the generator, as a closed-loop
    // client's would; only the corrected view may show that wait.
    let mut cfg = RunConfig::constant(Some(format!("http://{addr}")), 200.0, 0.0);
    cfg.max_in_flight = 1;
    cfg.duration = Some(Duration::from_secs(3));
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    let f = &report.food;
    assert!(
        f.latency_corrected.p99_ms > 500.0,
        "corrected {:?}",
        f.latency_corrected
    );
    assert!(
        f.latency_service.p99_ms < 100.0,
        "service {:?}",
        f.latency_service
    );
    assert!(f.late > 100, "late {}", f.late);
    stop.shutdown().await;
}

#[tokio::test]
async fn a_run_ends_on_time_even_when_the_schedule_falls_behind() {
    // 1,000/s against at most 2 requests in flight at 200 ms each: the schedule falls far
    // behind the clock. The run must still stop after 1 s and count what it never sent.
    let mut cfg = order_server::Config::default();
    cfg.sim.median_latency = [Duration::from_millis(200); 2];
    cfg.sim.sigma = 0.0;
    cfg.sim.error_rate = 0.0;
    let stop = support::TestServer::start(cfg).await;
    let addr = stop.addr;
    let mut run = RunConfig::constant(Some(format!("http://{addr}")), 1000.0, 0.0);
    run.duration = Some(Duration::from_secs(1));
    run.max_in_flight = 2;
    let t = std::time::Instant::now();
    let report = loadgen::run(run, std::future::pending())
        .await
        .expect("run");
    let took = t.elapsed();
    stop.shutdown().await;
    assert_eq!(report.stopped_by, "duration");
    assert!(took < Duration::from_secs(3), "ran for {took:?}");
    let total = &report.total;
    assert!(total.sent <= 20, "{} sent", total.sent);
    assert!(total.skipped >= 900, "{} skipped", total.skipped);
    assert_eq!(total.scheduled, total.sent + total.skipped);
}

/// A scenario fault due after the schedule stopped is never switched on, even while the
/// drain still waits for slow answers (on both executors).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fault_is_switched_on_after_the_schedule_stops() {
    for http2 in [false, true] {
        let mut cfg = order_server::Config::default();
        cfg.sim.median_latency = [Duration::from_millis(800); 2];
        cfg.sim.sigma = 0.0;
        cfg.sim.error_rate = 0.0;
        let server = support::TestServer::start_with_admin(cfg, true).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let scenario = dir.path().join("late-fault.toml");
        std::fs::write(
            &scenario,
            "[[phase]]\nduration = \"600ms\"\nfood_rate = 20\nclothing_rate = 0\n\
             [[phase]]\nduration = \"10s\"\nfood_rate = 20\nclothing_rate = 0\n\
             [[phase.fault]]\nkind = \"errors\"\nerror_rate = 0.5\n",
        )
        .expect("write scenario");
        let admin = server.admin.expect("admin");
        let mut args = vec![
            "loadgen".to_string(),
            "--scenario".into(),
            scenario.display().to_string(),
            "--target".into(),
            format!("http://{}", server.addr),
            "--admin-url".into(),
            format!("http://{admin}"),
            "--duration".into(),
            "300ms".into(),
            "--no-progress".into(),
        ];
        if http2 {
            args.push("--http2".into());
        }
        let cli = <loadgen::Cli as clap::Parser>::try_parse_from(args).expect("flags");
        let t = std::time::Instant::now();
        let report = loadgen::run(cli.into_config().expect("config"), std::future::pending())
            .await
            .expect("run");
        // The drain outlasted the fault's due time (0.6 s): the answers take 0.8 s.
        assert!(
            t.elapsed() > Duration::from_millis(700),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(report.stopped_by, "duration");
        assert!(report.total.completed > 0, "{:?}", report.total);
        let faults = server
            .scrape()
            .await
            .sum(order_server::contract::FAULT_ACTIVE, &[]);
        assert_eq!(
            faults, 0.0,
            "http2 {http2}: a fault was switched on after the stop"
        );
        server.shutdown().await;
    }
}

/// The target rate is what was asked for; the Poisson schedule's own count is reported beside
/// it, not in its place.
#[tokio::test]
async fn the_target_rate_is_the_asked_rate_not_the_drawn_one() {
    let (url, server) = support::order_server().await;
    let mut cfg = RunConfig::constant(Some(url), 10.0, 0.0);
    cfg.arrivals = loadgen::schedule::ArrivalProcess::Poisson;
    cfg.seed = 3;
    cfg.duration = Some(Duration::from_secs(2));
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    let food = &report.food;
    assert!((food.target_rate - 10.0).abs() < 1e-6, "{food:?}");
    assert!(
        (food.scheduled_rate - food.scheduled as f64 / report.duration_seconds).abs() < 1e-9,
        "{food:?}"
    );
    assert_ne!(
        food.scheduled, 20,
        "seed 3 draws a count other than the asked 20"
    );
    assert_eq!(report.clothing.target_rate, 0.0);
    server.shutdown().await;
}

/// `--threshold` expressions decide the exit code beside the shorthands, and each verdict is
/// in the report, by the expression as written.
#[tokio::test]
async fn threshold_expressions_decide_the_exit_code() {
    let (url, server) = support::order_server().await;
    let run = |exprs: &[&str]| {
        let mut cfg = RunConfig::constant(Some(url.clone()), 40.0, 20.0);
        cfg.duration = Some(Duration::from_secs(1));
        cfg.thresholds.exprs = exprs.iter().map(|t| t.parse().expect("valid")).collect();
        loadgen::run(cfg, std::future::pending())
    };
    let report = run(&["p99<5s", "food.error_ratio<0.5", "achieved_ratio>0.5"])
        .await
        .expect("run");
    assert_eq!(
        loadgen::exit_code(&report),
        loadgen::exit::OK,
        "{:?}",
        report.thresholds
    );
    let report = run(&["clothing.p50<1us", "p99<5s"]).await.expect("run");
    assert_eq!(loadgen::exit_code(&report), loadgen::exit::THRESHOLD);
    let verdicts: Vec<(&str, bool)> = report
        .thresholds
        .iter()
        .map(|c| (c.name.as_str(), c.passed))
        .collect();
    assert_eq!(verdicts, [("clothing.p50<1us", false), ("p99<5s", true)]);
    let mut json = Vec::new();
    report.write_json(&mut json).expect("json");
    let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
    assert_eq!(v["thresholds"][0]["name"], "clothing.p50<1us");
    assert_eq!(v["thresholds"][0]["op"], "<");
    assert_eq!(v["thresholds"][0]["passed"], false);
    server.shutdown().await;
}
