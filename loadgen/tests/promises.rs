//! What the README promises about the load generator's verdicts and exit codes, tried as a
//! user tries it (issue 26): faults sent where the load does not go are refused, nothing to
//! judge is a miss for every metric, `achieved_ratio` does not depend on the Poisson draw, the
//! shorthands are named by their expression, and a report that cannot be written is its own
//! exit code, never a panic.

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use loadgen::schedule::ArrivalProcess;
use loadgen::RunConfig;
use order_server::test_kit::{backticked_flags, flags_without_env, readme, sentence};

fn loadgen(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--no-progress")
        .output()
        .expect("run loadgen");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The README's scenario example without --target drove the embedded server and sent the
/// faults elsewhere: now it is refused before the run, saying why.
#[test]
fn faults_without_a_target_are_refused() {
    let (code, _, err) = loadgen(&[
        "--scenario",
        "error-burst",
        "--admin-url",
        "http://127.0.0.1:5002",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--admin-url needs --target") && !err.contains("panicked"),
        "{err}"
    );
    // The same through the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--requests", "1", "--no-progress"])
        .env("LOADGEN_ADMIN_URL", "http://127.0.0.1:5002")
        .output()
        .expect("run loadgen");
    assert_eq!(out.status.code(), Some(2));
}

/// No clothing order completed: every clothing threshold, whatever its metric and direction,
/// has nothing to judge and is missed (its actual is null), exit 1.
#[test]
fn nothing_to_judge_is_a_miss_for_every_metric() {
    let exprs = [
        "clothing.error_ratio<0.01",
        "clothing.error_ratio>=0",
        "clothing.p99<1s",
        "clothing.p50>=0ms",
        "clothing.achieved_ratio>0.5",
        "clothing.achieved_ratio<=1",
    ];
    let mut args = vec![
        "--food-rate",
        "5",
        "--clothing-rate",
        "0",
        "--requests",
        "5",
        "--output",
        "json",
    ];
    for e in &exprs {
        args.extend(["--threshold", e]);
    }
    let (code, out, err) = loadgen(&args);
    assert_eq!(code, Some(1), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json report");
    assert_eq!(v["clothing"]["completed"], 0);
    assert_eq!(v["food"]["completed"], 5);
    let checks = v["thresholds"].as_array().expect("thresholds");
    assert_eq!(checks.len(), exprs.len());
    for (c, e) in checks.iter().zip(exprs) {
        assert_eq!(c["name"], e);
        assert_eq!(c["passed"], false, "{c}");
        assert!(c["actual"].is_null(), "{c}");
    }
    // The text report says there was nothing, not a number.
    let text: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !["--output", "json"].contains(a))
        .collect();
    let (code, out, _) = loadgen(&text);
    assert_eq!(code, Some(1));
    for e in exprs {
        let line = out
            .lines()
            .find(|l| l.starts_with("threshold") && l.contains(e))
            .unwrap_or_else(|| panic!("no verdict for {e}: {out}"));
        assert!(
            line.contains("actual none") && line.ends_with("MISSED"),
            "{line}"
        );
    }
    // The shorthands too: against a closed port no request gets an answer, so there is no
    // latency to judge (it used to read 0 ms and pass).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let (_, out, _) = loadgen(&[
        "--target",
        &url,
        "--requests",
        "2",
        "--max-p99",
        "1s",
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json report");
    assert_eq!(v["total"]["outcomes"]["connect_error"], 2);
    let c = &v["thresholds"][0];
    assert_eq!(
        (&c["name"], &c["passed"]),
        (&"p99<=1000ms".into(), &false.into())
    );
    assert!(c["actual"].is_null(), "{c}");
}

/// `achieved_ratio>0.99` on runs where every scheduled request was sent and answered holds
/// for every seed: it compares with what the schedule drew, not with the asked rate, which
/// Poisson arrivals scatter around (the report's `target_rate` against `scheduled_rate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn achieved_ratio_does_not_depend_on_the_draw() {
    let (url, server) = support::order_server().await;
    let mut runs = tokio::task::JoinSet::new();
    for seed in 1..=16u64 {
        let mut cfg = RunConfig::constant(Some(url.clone()), 10.0, 5.0);
        cfg.arrivals = ArrivalProcess::Poisson;
        cfg.seed = seed;
        cfg.duration = Some(Duration::from_secs(2));
        cfg.thresholds.exprs = vec!["achieved_ratio>0.99".parse().expect("valid")];
        runs.spawn(async move { (seed, loadgen::run(cfg, std::future::pending()).await) });
    }
    let mut drawn_off = 0;
    while let Some(done) = runs.join_next().await {
        let (seed, report) = done.expect("join");
        let r = report.expect("run");
        let t = &r.total;
        assert_eq!(t.completed, t.scheduled, "seed {seed}: {t:?}");
        assert!(r.passed, "seed {seed}: {:?}", r.thresholds);
        assert_eq!(r.thresholds[0].actual, 1.0, "seed {seed}");
        if (t.scheduled_rate / t.target_rate - 1.0).abs() > 0.01 {
            drawn_off += 1;
        }
    }
    // The draw did scatter: judged against the asked rate, these runs would have missed.
    assert!(
        drawn_off >= 8,
        "only {drawn_off} of 16 draws off by over 1 %"
    );
    server.shutdown().await;
}

/// `--max-p99 D` and `--max-error-ratio R` report under the expressions they stand for.
#[test]
fn the_shorthands_are_named_by_their_expression() {
    let (code, out, err) = loadgen(&[
        "--requests",
        "5",
        "--max-p99",
        "250ms",
        "--max-error-ratio",
        "0.5",
        "--output",
        "json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json report");
    let names: Vec<&str> = v["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["error_ratio<=0.5", "p99<=250ms"]);
    // Each name is an expression --threshold takes, meaning the same.
    for n in names {
        let (code, _, err) = loadgen(&["--requests", "1", "--threshold", n]);
        assert_eq!(code, Some(0), "{n}: {err}");
    }
}

/// The load generator's standard output (and standard error) closed before the report is
/// written, as `loadgen ... | true` does: exit 3, never 0, never a panic.
fn closed_pipe(args: &[&str], close_stderr: bool) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    drop(child.stdout.take());
    let mut err = String::new();
    if close_stderr {
        drop(child.stderr.take());
    } else if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).expect("read stderr");
    }
    let status = child.wait().expect("wait");
    (status.code(), err)
}

#[test]
fn a_report_that_cannot_be_written_exits_3_without_panicking() {
    assert_eq!(loadgen::exit::UNWRITTEN, 3);
    let (code, err) = closed_pipe(&["--requests", "3"], false);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("writing the report to standard output") && !err.contains("panicked"),
        "{err}"
    );
    // A missed threshold does not hide it: nobody saw the verdict.
    let (code, err) = closed_pipe(&["--requests", "3", "--max-p99", "1ns"], false);
    assert_eq!(code, Some(3), "{err}");
    // `2>&1 | true`: standard error is closed too, so the error cannot even be said.
    let (code, _) = closed_pipe(&["--requests", "3", "--output", "json"], true);
    assert_eq!(code, Some(3), "stderr closed too");
    // A usage error with standard error closed: still exit 2, not a panic.
    let (code, _) = closed_pipe(&["--food-rate", "lots"], true);
    assert_eq!(code, Some(2));
}

#[test]
fn a_merge_that_cannot_be_written_exits_3_without_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("whole.json");
    let path = report.to_str().expect("utf8 path");
    let (code, _, err) = loadgen(&["--requests", "3", "--report-file", path]);
    assert_eq!(code, Some(0), "{err}");
    for close_stderr in [false, true] {
        let (code, err) = closed_pipe(&["merge", path, "--output", "json"], close_stderr);
        assert_eq!(code, Some(3), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `loadgen --help` shows an environment variable for every flag but the ones both READMEs
/// name as having none.
#[test]
fn every_flag_has_an_environment_variable_but_the_ones_the_readmes_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--help")
        .output()
        .expect("loadgen --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--food-rate") && help.contains("[env: LOADGEN_FOOD_RATE="));
    let without = flags_without_env(&help);
    assert!(without.contains("--header"), "{without:?}");
    for name in ["README.md", "README.zh-CN.md"] {
        let said = sentence(&readme(name), "`loadgen --help`");
        let named: BTreeSet<String> = backticked_flags(&said)
            .into_iter()
            .filter(|f| f != "--help")
            .collect();
        assert_eq!(without, named, "{name}: {said}");
    }
}

/// Shards count from 0: every `--shard I/N` example in the READMEs is one the program takes,
/// and its line lists the shards of that split as the program numbers them.
#[test]
fn the_readmes_count_shards_from_zero() {
    for name in ["README.md", "README.zh-CN.md"] {
        let text = readme(name);
        let mut seen = 0;
        for line in text.lines().filter(|l| l.contains("--shard ")) {
            let Some(spec) = line
                .split("--shard ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
            else {
                continue;
            };
            let Ok(shard) = spec.parse::<loadgen::cli::Shard>() else {
                continue; // `--shard I/N` in prose
            };
            seen += 1;
            let n = shard.count;
            assert!(format!("{n}/{n}").parse::<loadgen::cli::Shard>().is_err());
            for i in 0..n {
                let each = format!("{i}/{n}");
                assert!(each.parse::<loadgen::cli::Shard>().is_ok());
                assert!(line.contains(&each), "{name}: {line} does not list {each}");
            }
        }
        assert!(seen > 0, "{name}: no --shard example");
    }
}
