//! `loadgen merge` on the reports of two shards run at the same time against one order
//! server: the merged counts are the server's, the merged percentiles those of one histogram
//! fed every sample, and inputs that do not belong together are refused with exit 2.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use loadgen::report::Latency;
use loadgen::RunConfig;
use order_server::contract as c;

fn merge(args: &[&Path], extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("merge")
        .args(extra)
        .args(args)
        .output()
        .expect("run loadgen merge");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_merge_into_the_servers_counts_and_one_histograms_percentiles() {
    let (url, server) = support::order_server().await;
    let shard = |i: u32| {
        let mut cfg = RunConfig::constant(Some(url.clone()), 120.0, 60.0);
        cfg.arrivals = loadgen::schedule::ArrivalProcess::Poisson;
        cfg.plan.shard = (i, 2);
        cfg.duration = Some(Duration::from_secs(2));
        loadgen::run(cfg, std::future::pending())
    };
    let (a, b) = tokio::join!(shard(0), shard(1));
    let (a, b) = (a.expect("shard 0"), b.expect("shard 1"));
    let served = server.scrape().await.sum(c::ORDERS_PROCESSED, &[]);
    server.shutdown().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let json = |r: &loadgen::Report| {
        let mut v = Vec::new();
        r.write_json(&mut v).expect("json");
        String::from_utf8(v).expect("utf8")
    };
    let pa = write(dir.path(), "shard-0.json", &json(&a));
    // As `kubectl logs` gives it: the report among the log lines on standard error.
    let pb = write(
        dir.path(),
        "shard-1.log",
        &format!(
            "2026-12-04T10:00:00Z  INFO loadgen: load generator metrics on http://0.0.0.0:9464/metrics\n{}2026-12-04T10:10:30Z  INFO loadgen: bye\n",
            json(&b)
        ),
    );
    let (code, out, err) = merge(&[&pa, &pb], &["--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let merged: serde_json::Value = serde_json::from_str(&out).expect("merged JSON");

    let total = &merged["total"];
    assert_eq!(
        total["completed"].as_f64(),
        Some(served),
        "merged vs the server's count"
    );
    assert_eq!(
        total["scheduled"].as_u64(),
        Some(a.total.scheduled + b.total.scheduled)
    );
    assert_eq!(
        merged["food"]["outcomes"]["2xx"].as_u64(),
        Some(a.food.outcomes["2xx"] + b.food.outcomes["2xx"])
    );
    // The target rates add up to the whole run's, each weighted by how long its shard ran
    // (2 s each), over the whole run: from the first start to the last end, milliseconds
    // longer than either.
    let span = merged["duration_seconds"].as_f64().expect("duration");
    assert!((2.0..2.5).contains(&span), "{span}");
    let target = total["target_rate"].as_f64().expect("rate");
    assert!(
        (target - 180.0 * 2.0 / span).abs() < 0.2,
        "{target} over {span} s"
    );

    // One histogram fed every sample: the two shards' histograms added.
    let mut all = loadgen::hdr::decode(&a.total.histograms.corrected).expect("a");
    all.add(loadgen::hdr::decode(&b.total.histograms.corrected).expect("b"))
        .expect("same bounds");
    let one = Latency::from_micros(&all);
    let got = &total["latency_corrected"];
    for (field, want) in [
        ("count", one.count as f64),
        ("p50_ms", one.p50_ms),
        ("p99_ms", one.p99_ms),
        ("max_ms", one.max_ms),
    ] {
        assert_eq!(got[field].as_f64(), Some(want), "{field}");
    }
    // The merge is the whole run: shard 0 of 1.
    assert_eq!(merged["shard"]["count"], 1);

    // The series on one clock, from the earlier start: its points add up to the totals.
    let starts = [&a, &b].map(|r| r.started_at.clone().expect("started_at"));
    assert_eq!(
        merged["started_at"].as_str(),
        starts.iter().min().map(|s| s.as_str())
    );
    let series = &merged["series"];
    let column_sum = |t: &str, column: &str| -> u64 {
        let c = match column.split_once('.') {
            Some((a, b)) => &series[t][a][b],
            None => &series[t][column],
        };
        c.as_array()
            .expect(column)
            .iter()
            .filter_map(|v| v.as_u64())
            .sum()
    };
    for t in ["food", "clothing"] {
        for (column, field) in [
            ("sent", "sent"),
            ("scheduled", "scheduled"),
            ("outcomes.2xx", "ok"),
        ] {
            assert_eq!(
                Some(column_sum(t, column)),
                merged[t][field].as_u64(),
                "{t} {column}"
            );
        }
    }
    let points = series["t"].as_array().expect("t").len();
    assert!((2..=4).contains(&points), "{points} points for 2 s");

    // Text and hgrm like a single run's.
    let (code, text, _) = merge(&[&pa, &pb], &[]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("scheduled/s") && text.contains("latency (ms)"),
        "{text}"
    );
    let (code, hgrm, _) = merge(&[&pa, &pb], &["--output", "hgrm"]);
    assert_eq!(code, Some(0));
    assert!(
        hgrm.contains(&format!("Total count    = {:>12}", one.count)),
        "{hgrm}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_that_do_not_belong_together_exit_2_saying_why() {
    let (url, server) = support::order_server().await;
    let shard = |i: u32, n: u32| {
        let mut cfg = RunConfig::constant(Some(url.clone()), 20.0, 0.0);
        cfg.plan.shard = (i, n);
        cfg.duration = Some(Duration::from_millis(300));
        loadgen::run(cfg, std::future::pending())
    };
    let (s0, s1, whole) = tokio::join!(shard(0, 2), shard(1, 2), shard(0, 1));
    server.shutdown().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let json = |name: &str, r: loadgen::Report| {
        let mut v = Vec::new();
        r.write_json(&mut v).expect("json");
        write(dir.path(), name, &String::from_utf8(v).expect("utf8"))
    };
    let (p0, p1, pw) = (
        json("s0.json", s0.expect("run")),
        json("s1.json", s1.expect("run")),
        json("whole.json", whole.expect("run")),
    );
    let old = write(
        dir.path(),
        "old.json",
        &std::fs::read_to_string(&p0)
            .expect("read")
            .replace("\"schema_version\": 2", "\"schema_version\": 1"),
    );
    let garbage = write(dir.path(), "garbage.json", "not a report\n");
    let cases: &[(&[&Path], &str)] = &[
        (&[&p0, &p0], "are both shard 0/2"),
        (&[&p0], "shard 1 of 2 is missing"),
        (&[&p0, &p1, &pw], "not the same run"),
        (&[&old, &p1], "schema_version 1"),
        (&[&garbage], "not a load generator JSON report"),
        (&[Path::new("/nonexistent/r.json")], "cannot read"),
    ];
    for (files, why) in cases {
        let (code, _, err) = merge(files, &[]);
        assert_eq!(code, Some(2), "{files:?}: {err}");
        assert!(
            err.contains(why) && !err.contains("panicked"),
            "{files:?}: {err}"
        );
    }
    // The two halves of one split merge.
    let (code, _, err) = merge(&[&p1, &p0], &[]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, _) = merge(&[], &[]);
    assert_eq!(code, Some(2), "no reports is a usage error");
}

/// Reports that are malformed or hostile are refused, naming the file and the problem; none
/// panics, and none is merged in part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_reports_are_refused_not_merged_in_part() {
    let (url, server) = support::order_server().await;
    let mut cfg = RunConfig::constant(Some(url.clone()), 40.0, 0.0);
    cfg.duration = Some(Duration::from_millis(500));
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    server.shutdown().await;
    let mut v = Vec::new();
    report.write_json(&mut v).expect("json");
    let good: serde_json::Value = serde_json::from_slice(&v).expect("json");
    let dir = tempfile::tempdir().expect("tempdir");
    let variant = |name: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let mut r = good.clone();
        change(&mut r);
        write(
            dir.path(),
            name,
            &serde_json::to_string_pretty(&r).expect("json"),
        )
    };
    let other_bounds = {
        let h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000_000_000_000, 3)
            .expect("bounds");
        loadgen::hdr::encode(&h).expect("encode")
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            variant("bounds.json", &|r| {
                r["food"]["histograms"]["corrected"] = other_bounds.clone().into()
            }),
            "not the load generator's",
        ),
        (
            variant("counts.json", &|r| {
                let n = r["food"]["outcomes"]["2xx"].as_u64().unwrap_or(0);
                r["food"]["outcomes"]["2xx"] = (n + 5).into();
                // Without a series to disagree with first.
                r["series"] = serde_json::Value::Null;
            }),
            "samples where the counts say",
        ),
        (
            variant("duration.json", &|r| r["duration_seconds"] = 1e20.into()),
            "duration_seconds 100000000000000000000 is out of range",
        ),
        (
            variant("rate.json", &|r| r["food"]["target_rate"] = (-50.0).into()),
            "target_rate -50 is out of range",
        ),
        (
            variant("index.json", &|r| {
                r["shard"] = serde_json::json!({"index": 5, "count": 2})
            }),
            "shard 5/2 is not a shard",
        ),
        (
            variant("zero.json", &|r| {
                r["shard"] = serde_json::json!({"index": 0, "count": 0})
            }),
            "shard 0/0 is not a shard",
        ),
        (
            variant("schema.json", &|r| r["schema_version"] = "2x".into()),
            "schema_version \"2x\"",
        ),
        (
            variant("outcome.json", &|r| {
                r["food"]["outcomes"]["bogus"] = 99.into()
            }),
            "unknown outcome class \"bogus\"",
        ),
        (
            variant("bomb.json", &|r| {
                r["food"]["histograms"]["lag"] = "HIST".repeat(1 << 20).into();
            }),
            "larger than any histogram",
        ),
        (
            variant("series.json", &|r| {
                r["series"]["food"]["sent"] = serde_json::json!([1, 2, 3, 4, 5, 6, 7]);
            }),
            "series columns of different lengths",
        ),
        (
            variant("sums.json", &|r| {
                let sent = &mut r["series"]["food"]["sent"][0];
                *sent = (sent.as_u64().unwrap_or(0) + 1_000_000).into();
            }),
            "the food series does not add up to the report's food counts",
        ),
        (
            variant("huge.json", &|r| {
                r["series"]["food"]["corrected_p99_ms"][0] = 1.7e308.into();
            }),
            "series values of food out of range",
        ),
        (
            variant("phase.json", &|r| {
                r["phases"] = serde_json::json!([{"name": "x".repeat(5000), "start_seconds": 0.0, "end_seconds": null}]);
            }),
            "a phase name of 5000 bytes",
        ),
        (
            variant("phases.json", &|r| {
                let one =
                    serde_json::json!({"name": "p", "start_seconds": 0.0, "end_seconds": null});
                r["phases"] = serde_json::Value::Array(vec![one; 1001]);
            }),
            "1001 phases: more than any plan",
        ),
        (
            variant("started.json", &|r| r["started_at"] = "yesterday".into()),
            "started_at \"yesterday\"",
        ),
        (dir.path().to_path_buf(), "not a regular file"),
    ];
    for (file, why) in &cases {
        let (code, out, err) = merge(&[file], &[]);
        assert_eq!(code, Some(2), "{}: {err}", file.display());
        assert!(
            err.contains(why) && !err.contains("panicked"),
            "{}: {err}",
            file.display()
        );
        assert!(
            out.is_empty(),
            "{}: printed a report: {out}",
            file.display()
        );
    }
    // Food and clothing that overflow when added into the total.
    let types = variant("types.json", &|r| {
        r["food"]["outcomes"]["connect_error"] = u64::MAX.into();
        r["clothing"]["outcomes"]["connect_error"] = 1.into();
        r["series"] = serde_json::Value::Null;
    });
    let (code, _, err) = merge(&[&types], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("overflow") && !err.contains("panicked"),
        "{err}"
    );
    // Counts that overflow when summed.
    let half = |i: u32| {
        move |r: &mut serde_json::Value| {
            r["food"]["scheduled"] = u64::MAX.into();
            r["shard"] = serde_json::json!({"index": i, "count": 2});
            r["series"] = serde_json::Value::Null;
        }
    };
    let (a, b) = (variant("o0.json", &half(0)), variant("o1.json", &half(1)));
    let (code, _, err) = merge(&[&a, &b], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("overflow") && !err.contains("panicked"),
        "{err}"
    );
}

/// A shard cut short (a pod stopped early) asked for less: the merged target rate weighs each
/// shard's rate by how long it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_cut_short_asks_for_less() {
    let (url, server) = support::order_server().await;
    let shard = |i: u32, ms: u64| {
        let mut cfg = RunConfig::constant(Some(url.clone()), 40.0, 0.0);
        cfg.plan.shard = (i, 2);
        cfg.duration = Some(Duration::from_millis(ms));
        loadgen::run(cfg, std::future::pending())
    };
    let (a, b) = tokio::join!(shard(0, 1000), shard(1, 500));
    server.shutdown().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, r: &loadgen::Report| {
        let mut v = Vec::new();
        r.write_json(&mut v).expect("json");
        write(dir.path(), name, &String::from_utf8(v).expect("utf8"))
    };
    let (a, b) = (a.expect("a"), b.expect("b"));
    let (pa, pb) = (file("a.json", &a), file("b.json", &b));
    let (code, out, err) = merge(
        &[&pa, &pb],
        &["--output", "json", "--threshold", "achieved_ratio>0.9"],
    );
    assert_eq!(code, Some(0), "{err}\n{out}");
    let merged: serde_json::Value = serde_json::from_str(&out).expect("json");
    // 20/s for 1 s and 20/s for 0.5 s over 1 s: 30/s, not 40/s.
    let target = merged["total"]["target_rate"].as_f64().expect("rate");
    assert!((target - 30.0).abs() < 0.5, "{target}");
}

/// The binary writes --report-file and --report-html together, and merge writes a page too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_writes_the_html_report_for_a_run_and_a_merge() {
    let (url, server) = support::order_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            &url,
            "--food-rate",
            "50",
            "--clothing-rate",
            "20",
        ])
        .args(["--duration", "2s", "--no-progress", "--output", "json"])
        .arg("--report-file")
        .arg(&json)
        .arg("--report-html")
        .arg(&html)
        .args(["--header", "X-Api-Key: hunter2"])
        .output()
        .expect("run loadgen");
    server.shutdown().await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).expect("page");
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    assert!(
        page.contains(r#"data-series="food sent/s""#),
        "no throughput plot"
    );
    assert!(
        page.contains("X-Api-Key: &lt;redacted&gt;") && !page.contains("hunter2"),
        "the header's value shows"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    assert_eq!(report["loadgen_version"], env!("CARGO_PKG_VERSION"));
    assert!(report["series"]["t"]
        .as_array()
        .is_some_and(|t| t.len() >= 2));

    let merged = dir.path().join("merged.html");
    let (code, _, err) = merge(&[&json], &["--report-html", &merged.display().to_string()]);
    assert_eq!(code, Some(0), "{err}");
    let page = std::fs::read_to_string(&merged).expect("merged page");
    assert!(page.contains("(merged from shard reports)") && page.contains("data-series"));
}

/// Shards of different runs are refused (issue 26: shard 0/2 of one run and 1/2 of another
/// made a run that never happened): by their run ids when they have them, otherwise by seed,
/// plan and start. The run id comes from `--run-id` or `LOADGEN_RUN_ID`, as a Job passes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_of_different_runs_are_refused() {
    let (url, server) = support::order_server().await;
    let shard = |i: u32, seed: u64, id: Option<&str>| {
        let mut cfg = RunConfig::constant(Some(url.clone()), 20.0, 0.0);
        cfg.plan.shard = (i, 2);
        cfg.seed = seed;
        cfg.run_id = id.map(String::from);
        cfg.duration = Some(Duration::from_millis(300));
        loadgen::run(cfg, std::future::pending())
    };
    let (a0, a1, b1, c0, c1, d1) = tokio::join!(
        shard(0, 1, Some("run-a")),
        shard(1, 1, Some("run-a")),
        shard(1, 1, Some("run-b")),
        shard(0, 1, None),
        shard(1, 1, None),
        shard(1, 2, None),
    );
    // One shard through the binary, its id from the environment as the Job sets it.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--target", &url, "--shard", "1/2", "--food-rate", "20"])
        .args([
            "--clothing-rate",
            "0",
            "--duration",
            "300ms",
            "--output",
            "json",
        ])
        .args(["--no-progress", "--arrivals", "uniform"])
        .env("LOADGEN_RUN_ID", "run-e")
        .output()
        .expect("run loadgen");
    assert_eq!(out.status.code(), Some(0));
    let e1: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(e1["run"]["id"], "run-e");
    assert_eq!(e1["run"]["seed"], 1);
    server.shutdown().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let json = |name: &str, r: loadgen::Report| {
        let mut v = Vec::new();
        r.write_json(&mut v).expect("json");
        write(dir.path(), name, &String::from_utf8(v).expect("utf8"))
    };
    let [a0, a1, b1, c0, c1, d1] = [
        ("a0", a0),
        ("a1", a1),
        ("b1", b1),
        ("c0", c0),
        ("c1", c1),
        ("d1", d1),
    ]
    .map(|(name, r)| json(&format!("{name}.json"), r.expect("run")));
    let e1 = write(dir.path(), "e1.json", &e1.to_string());
    // The same run's shard 1, but started 6 s later (the same seed and plan, no id).
    let text = std::fs::read_to_string(&c1).expect("read");
    let mut late: serde_json::Value = serde_json::from_str(&text).expect("json");
    let at = humantime::parse_rfc3339(late["started_at"].as_str().expect("started_at"))
        .expect("rfc3339");
    late["started_at"] = humantime::format_rfc3339_millis(at + Duration::from_secs(6))
        .to_string()
        .into();
    let c1_late = write(dir.path(), "c1-late.json", &late.to_string());

    let cases: &[(&[&Path], &str)] = &[
        (&[&a0, &b1], "run ids \"run-a\" and \"run-b\""),
        (&[&a0, &e1], "run ids \"run-a\" and \"run-e\""),
        (&[&a0, &c1], "run ids \"run-a\" and (none)"),
        (&[&c0, &d1], "seeds 1 and 2"),
        (&[&c0, &c1_late], "s apart"),
    ];
    for (files, why) in cases {
        let (code, _, err) = merge(files, &[]);
        assert_eq!(code, Some(2), "{files:?}: {err}");
        assert!(
            err.contains(why) && err.contains("--run-id") && !err.contains("panicked"),
            "{files:?}: {err}"
        );
    }
    // Shards of one run merge, with or without an id, and the merge says which run it is.
    for (files, id) in [
        ([a0.as_path(), a1.as_path()], serde_json::json!("run-a")),
        ([c1.as_path(), c0.as_path()], serde_json::Value::Null),
    ] {
        let (code, out, err) = merge(&files, &["--output", "json"]);
        assert_eq!(code, Some(0), "{files:?}: {err}");
        let merged: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(merged["run"]["id"], id);
        assert_eq!(merged["run"]["seed"], 1);
    }
}
