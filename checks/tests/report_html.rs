//! The load generator's HTML report in a real browser: the bundled `latency-spike` scenario,
//! shortened to seconds, runs against the embedded order server; its page (and the page of
//! `loadgen merge` over its JSON report) is opened in headless Chromium with a probe script
//! added to a copy, which reads back through the browser's own SVG DOM how many points each
//! drawn series has and whether it was laid out. Every series the report's numbers call for
//! must be there, with exactly that many points, and nothing else; the phases, the thresholds'
//! verdicts and the totals must be on the page; and the page must fetch nothing.

use std::collections::BTreeMap;
use std::path::Path;

use clap::Parser;
use loadgen::report::Thresholds;
use loadgen::report_file::{FileFormat, ReportFile};
use order_metrics_checks::browser::Chromium;
use order_metrics_checks::repo_root;
use serde_json::Value;

/// Reads, per `data-series`, the points of its polylines and polygons (as the browser parsed
/// them) and whether each drew a box; per chart, its phases.
const PROBE: &str = r#"<script>
const series = {}, phases = {};
for (const g of document.querySelectorAll('[data-series]')) {
  let points = 0, boxes = 0;
  for (const el of g.querySelectorAll('polyline, polygon')) {
    points += el.points.numberOfItems;
    const b = el.getBBox();
    if (b.width > 0 || b.height > 0) boxes++;
  }
  const name = g.getAttribute('data-series');
  if (name in series) { series[name].duplicate = true; }
  series[name] = {points, boxes, chart: g.closest('figure').getAttribute('data-chart')};
}
for (const f of document.querySelectorAll('figure')) {
  phases[f.getAttribute('data-chart')] = [...f.querySelectorAll('[data-phase]')].map(p => p.getAttribute('data-phase'));
}
const verdicts = [...document.querySelectorAll('#thresholds tr')].slice(1).map(r => [...r.cells].map(c => c.textContent));
const summary = [...document.querySelectorAll('#summary tr')].slice(1).map(r => [...r.cells].map(c => c.textContent));
const out = document.createElement('pre');
out.id = 'probe';
out.textContent = JSON.stringify({series, phases, verdicts, summary});
document.body.appendChild(out);
</script>"#;

/// What the probe saw on `page`.
fn probe(chromium: &Chromium, page: &Path) -> Value {
    let html = std::fs::read_to_string(page).expect("page");
    let probed = page.with_extension("probe.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{PROBE}</body>"))).expect("write");
    let dom = chromium.dump_dom(&probed).expect("chromium");
    let start = dom.find("<pre id=\"probe\">").expect("the probe ran") + 16;
    let end = start + dom[start..].find("</pre>").expect("probe end");
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).expect("probe JSON")
}

fn column<'a>(series: &'a Value, t: &str, name: &str) -> &'a Vec<Value> {
    let c = match name.split_once('.') {
        Some((a, b)) => &series[t][a][b],
        None => &series[t][name],
    };
    c.as_array().unwrap_or_else(|| panic!("series {t}.{name}"))
}

/// The series a page must draw for `report` (its JSON), with their point counts: one point
/// per interval for rates, one per interval with samples for percentiles, both edges of a
/// stacked area, and one per row below 100 % of the `.hgrm` distribution.
fn expected(report: &Value, hgrm: &[(&str, &str)]) -> BTreeMap<String, u64> {
    let s = &report["series"];
    let n = s["t"].as_array().expect("t").len() as u64;
    let mut want = BTreeMap::new();
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    for t in ["food", "clothing"] {
        if report[t]["scheduled"].as_u64() == Some(0)
            && report[t]["target_rate"].as_f64() == Some(0.0)
        {
            continue;
        }
        for name in ["asked/s", "sent/s", "ok/s", "late/s", "skipped/s"] {
            want.insert(format!("{t} {name}"), n);
        }
        for (name, col) in [
            ("corrected p99", "corrected_p99_ms"),
            ("corrected p50", "corrected_p50_ms"),
            ("service p99", "service_p99_ms"),
            ("service p50", "service_p50_ms"),
            ("lag p99", "lag_p99_ms"),
        ] {
            let drawn = column(s, t, col).iter().filter(|v| !v.is_null()).count();
            want.insert(format!("{t} {name}"), drawn as u64);
        }
        for class in ["2xx", "4xx", "5xx", "timeout", "connect_error", "other"] {
            let sum: u64 = column(s, t, &format!("outcomes.{class}"))
                .iter()
                .filter_map(Value::as_u64)
                .sum();
            *classes.entry(class.to_string()).or_default() += sum;
        }
    }
    for (class, sum) in classes {
        if sum > 0 {
            want.insert(format!("{class}/s"), 2 * n);
        }
    }
    for (name, text) in hgrm {
        let rows = text
            .lines()
            .filter(|l| l.split_whitespace().count() == 4 && !l.contains("Percentile"))
            .count();
        want.insert(name.to_string(), rows as u64);
    }
    want
}

/// Checks the probe's findings against the report.
fn check(seen: &Value, report: &Value, hgrm: &[(&str, &str)], what: &str) {
    let want = expected(report, hgrm);
    let series = seen["series"].as_object().expect("series");
    let names: Vec<&String> = series.keys().collect();
    assert_eq!(
        names,
        want.keys().collect::<Vec<_>>(),
        "{what}: the series drawn"
    );
    for (name, points) in &want {
        let s = &series[name.as_str()];
        assert_eq!(
            s["points"].as_u64(),
            Some(*points),
            "{what}: points of {name}: {s}"
        );
        assert!(s["duplicate"].is_null(), "{what}: {name} drawn twice");
        if *points > 1 {
            assert!(
                s["boxes"].as_u64() >= Some(1),
                "{what}: {name} laid out nothing: {s}"
            );
        }
    }
    // The verdicts and the totals as the report has them.
    let verdicts = seen["verdicts"].as_array().expect("verdicts");
    let checks = report["thresholds"].as_array().expect("thresholds");
    assert_eq!(verdicts.len(), checks.len(), "{what}: {verdicts:?}");
    for (row, c) in verdicts.iter().zip(checks) {
        assert_eq!(row[0], c["name"], "{what}");
        let word = if c["passed"] == true {
            "passed"
        } else {
            "MISSED"
        };
        assert_eq!(row[2], word, "{what}: {}", c["name"]);
    }
    let total = &seen["summary"][2];
    assert_eq!(total[0], "total");
    for (i, field) in [(1, "scheduled"), (2, "sent"), (3, "ok"), (4, "failed")] {
        assert_eq!(
            total[i].as_str().and_then(|v| v.parse::<u64>().ok()),
            report["total"][field].as_u64(),
            "{what}: total {field}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_chromium,
    ignore = "chromium not found: apt-get install chromium (scripts/test does it as root)"
)]
async fn the_html_report_draws_the_runs_numbers_in_chromium() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // The bundled scenario with its phases cut from 2m, 5m and 3m to seconds.
    let bundled = std::fs::read_to_string(repo_root().join("loadgen/scenarios/latency-spike.toml"))
        .expect("bundled scenario");
    let mut short = bundled.clone();
    for (from, to) in [
        ("\"2m\"", "\"3s\""),
        ("\"5m\"", "\"4s\""),
        ("\"3m\"", "\"3s\""),
    ] {
        let line = format!("duration = {from}");
        assert!(short.contains(&line), "latency-spike.toml has no {line}");
        short = short.replace(&line, &format!("duration = {to}"));
    }
    let scenario = dir.path().join("latency-spike.toml");
    std::fs::write(&scenario, short).expect("write");
    let (html, json) = (
        dir.path().join("report.html"),
        dir.path().join("report.json"),
    );
    let cli = loadgen::Cli::try_parse_from([
        "loadgen".as_ref(),
        "--scenario".as_ref(),
        scenario.as_os_str(),
        "--no-progress".as_ref(),
        "--threshold".as_ref(),
        "clothing.p99<250ms".as_ref(),
        "--threshold".as_ref(),
        "food.error_ratio<0.01".as_ref(),
    ] as [&std::ffi::OsStr; 8])
    .expect("command line");
    let report = loadgen::run(cli.into_config().expect("config"), std::future::pending())
        .await
        .expect("run");
    // As the binary writes --report-html and --report-file.
    for (path, format) in [(&html, FileFormat::Html), (&json, FileFormat::Json)] {
        ReportFile::open(path)
            .and_then(|f| f.write(&report, format))
            .expect("report file");
    }
    let page = std::fs::read_to_string(&html).expect("page");
    for fetch in ["<script", "src=", "href=", "url(", "@import", "<link"] {
        assert!(
            !page.contains(fetch),
            "the page would fetch or run something: {fetch}"
        );
    }
    let value: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    assert!(
        value["series"]["t"]
            .as_array()
            .is_some_and(|t| t.len() >= 9),
        "{}",
        value["series"]
    );
    let hgrm = |kind| {
        let mut out = Vec::new();
        report.write_hgrm(&mut out, kind).expect("hgrm");
        String::from_utf8(out).expect("utf8")
    };
    let (corrected, service) = (
        hgrm(loadgen::report::Kind::Corrected),
        hgrm(loadgen::report::Kind::Service),
    );
    let distribution = [
        ("corrected (from the intended send)", corrected.as_str()),
        ("service (from the actual send)", service.as_str()),
    ];

    let seen = probe(&chromium, &html);
    check(&seen, &value, &distribution, "run");
    // The phases, shaded and named on every plot over time.
    let phases = seen["phases"].as_object().expect("phases");
    let over_time: Vec<_> = phases
        .iter()
        .filter(|(c, _)| !c.starts_with("Latency by percentile"))
        .collect();
    assert_eq!(over_time.len(), 6, "{phases:?}");
    for (chart, names) in over_time {
        assert_eq!(
            names,
            &serde_json::json!(["baseline", "spike", "recovery"]),
            "{chart}"
        );
    }
    // The spike shows: clothing's corrected p99 is over 250 ms in some interval, and the
    // threshold on it is missed.
    let p99 = column(&value["series"], "clothing", "corrected_p99_ms");
    assert!(
        p99.iter().filter_map(Value::as_f64).any(|v| v > 250.0),
        "{p99:?}"
    );
    assert_eq!(value["thresholds"][0]["passed"], false);

    // The merge of the run's report draws like a run.
    let merged =
        loadgen::merge::merge(std::slice::from_ref(&json), &Thresholds::default()).expect("merge");
    let merged_html = dir.path().join("merged.html");
    ReportFile::open(&merged_html)
        .and_then(|f| f.write(&merged, FileFormat::Html))
        .expect("merged page");
    let mut merged_json = Vec::new();
    merged.write_json(&mut merged_json).expect("json");
    let merged_value: Value = serde_json::from_slice(&merged_json).expect("json");
    check(
        &probe(&chromium, &merged_html),
        &merged_value,
        &distribution,
        "merge",
    );

    // And it renders to pixels.
    let png = dir.path().join("report.png");
    chromium
        .screenshot(&html, &png, 1100, 3000)
        .expect("screenshot");
    assert!(
        std::fs::metadata(&png).expect("png").len() > 50_000,
        "a blank screenshot"
    );
}
