//! The load generator's machine-readable results, read by an HdrHistogram implementation the
//! project did not write: the PyPI `hdrhistogram` package (`hdrh`, 0.10.8) decodes the JSON
//! report's V2 base64 histograms to the same counts and percentiles, and every row of
//! `--output hgrm` agrees with hdrh's own counts. (hdrh's own percentile writer steps through
//! levels differently from HdrHistogram's Java original, which `--output hgrm` follows, so the
//! rows are checked by their meaning, not compared as text.)

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use loadgen::report::Kind;
use loadgen::RunConfig;
use order_metrics_checks::repo_root;
use order_metrics_checks::tools::{hdrh_python, HDRH_PACKAGE};
use order_server::test_kit::{quiet_config, TestServer};

/// Runs `script` with `input` on standard input; its standard output.
fn python(python: &std::path::Path, script: &str, input: &str) -> String {
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// The rows of a percentile distribution: (value, percentile, total count).
fn rows(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.contains("Percentile"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

#[test]
fn scripts_test_installs_the_pinned_hdrh() {
    let script = std::fs::read_to_string(repo_root().join("scripts/test")).expect("scripts/test");
    assert!(
        script.contains(HDRH_PACKAGE),
        "scripts/test does not install {HDRH_PACKAGE}"
    );
}

#[tokio::test]
#[cfg_attr(
    missing_hdrh,
    ignore = "python3 cannot import hdrh: python3 -m pip install hdrhistogram==0.10.8 (scripts/test does it)"
)]
async fn another_hdrhistogram_reads_the_report_and_agrees_with_the_hgrm() {
    let Some(py) = hdrh_python() else {
        return;
    };
    let server = TestServer::start(quiet_config()).await;
    let mut cfg = RunConfig::constant(Some(format!("http://{}", server.addr)), 200.0, 100.0);
    cfg.duration = Some(Duration::from_secs(2));
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    server.shutdown().await;
    assert!(report.total.completed >= 500, "{:?}", report.total);

    for (kind, encoded, latency) in [
        (
            Kind::Corrected,
            &report.total.histograms.corrected,
            &report.total.latency_corrected,
        ),
        (
            Kind::Service,
            &report.total.histograms.service,
            &report.total.latency_service,
        ),
    ] {
        // hdrh decodes the base64 V2 form: same count and percentiles (microseconds).
        let read = python(
            &py,
            "import sys; from hdrh.histogram import HdrHistogram; \
             h = HdrHistogram.decode(sys.stdin.read().strip()); \
             print(h.get_total_count(), h.get_value_at_percentile(50), h.get_value_at_percentile(99), h.get_max_value())",
            encoded,
        );
        let got: Vec<f64> = read
            .split_whitespace()
            .map(|v| v.parse().expect("number"))
            .collect();
        assert_eq!(got[0], latency.count as f64, "{kind:?} count");
        // Percentiles: the two implementations round a quantile to a rank differently, so
        // theirs must be our value at that rank or at a neighbouring one.
        let ours_h = loadgen::hdr::decode(encoded).expect("our own encoding");
        let n = ours_h.len() as f64;
        for (theirs, q) in [(got[1], 0.5), (got[2], 0.99)] {
            let low = ours_h.value_at_quantile((q - 1.0 / n).max(0.0)) as f64;
            let high = ours_h.value_at_quantile((q + 1.0 / n).min(1.0)) as f64;
            assert!(
                (low..=high).contains(&theirs),
                "{kind:?} q{q}: hdrh {theirs} µs, ours {low}..{high} µs"
            );
        }
        assert_eq!(got[3], ours_h.max() as f64, "{kind:?} max");
        assert!(
            (latency.max_ms * 1000.0 - got[3]).abs() < 1.0,
            "{kind:?} max in the report"
        );

        // Our `.hgrm` (HdrHistogram's format: value in ms, percentile level, total count up
        // to the value, 1/(1-level)) checked against hdrh's own counts: every row's total
        // count is what hdrh counts at or below that value, reaches the row's level, and the
        // footer's mean, max and count are hdrh's.
        let mut hgrm = Vec::new();
        report.write_hgrm(&mut hgrm, kind).expect("hgrm");
        let hgrm = String::from_utf8(hgrm).expect("utf8");
        let rows = rows(&hgrm);
        assert!(rows.len() > 10, "{hgrm}");
        let values: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let counted = python(
            &py,
            "import sys, json; from hdrh.histogram import HdrHistogram; \
             d = json.loads(sys.stdin.read()); h = HdrHistogram.decode(d['h']); \
             recorded = [(v.value_iterated_to, v.count_at_value_iterated_to) for v in h.get_recorded_iterator()]; \
             cum = lambda us: sum(c for v, c in recorded if v <= us); \
             print(json.dumps({'cum': [cum(round(float(x) * 1000)) for x in d['values']], \
                               'mean_ms': h.get_mean_value() / 1000, 'max_ms': h.get_max_value() / 1000, \
                               'n': h.get_total_count()}))",
            &serde_json::json!({"h": encoded, "values": values}).to_string(),
        );
        let counted: serde_json::Value = serde_json::from_str(&counted).expect("json");
        let n = counted["n"].as_u64().expect("n");
        for (k, (value, level, total)) in rows.iter().enumerate() {
            let total: u64 = total.parse().expect("count");
            let level: f64 = level.parse().expect("level");
            assert_eq!(
                counted["cum"][k].as_u64(),
                Some(total),
                "{kind:?} row {k} ({value} ms): total count"
            );
            assert!(
                total as f64 >= (level * n as f64).ceil() - 1e-6,
                "{kind:?} row {k}: {total} of {n} does not reach {level}"
            );
        }
        let last = rows.last().expect("rows");
        assert_eq!(
            (last.1.as_str(), last.2.parse::<u64>().ok()),
            ("1.000000000000", Some(n))
        );
        for (field, key) in [("Mean    =", "mean_ms"), ("Max     =", "max_ms")] {
            let line = hgrm.lines().find(|l| l.contains(field)).expect("footer");
            let ours: f64 = line[line.find(field).expect("field") + field.len()..]
                .split(',')
                .next()
                .and_then(|v| v.trim().parse().ok())
                .expect("number");
            let theirs = counted[key].as_f64().expect("number");
            assert!(
                (ours - theirs).abs() < 0.0015,
                "{kind:?} {field} {ours} vs hdrh {theirs}"
            );
        }
        assert!(
            hgrm.contains(&format!("Total count    = {n:>12}")),
            "{hgrm}"
        );
    }
}
