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

/// Reads, per `data-series`, the points of its polylines and polygons as the browser parsed
/// them, whether each drew a box, and its chart's axes; per chart, its phases.
const PROBE: &str = r#"<script>
const series = {}, phases = {}, charts = {}, duplicates = [];
for (const f of document.querySelectorAll('figure')) {
  const svg = f.querySelector('svg'), name = f.getAttribute('data-chart');
  const nums = a => svg.getAttribute(a).split(' ').map(Number);
  charts[name] = {x: nums('data-x'), y: nums('data-y'), plot: nums('data-plot')};
  phases[name] = [...f.querySelectorAll('[data-phase]')].map(p => p.getAttribute('data-phase'));
}
for (const g of document.querySelectorAll('[data-series]')) {
  const name = g.getAttribute('data-series');
  if (name in series) duplicates.push(name);
  const xy = [];
  let boxes = 0;
  for (const el of g.querySelectorAll('polyline, polygon')) {
    for (let i = 0; i < el.points.numberOfItems; i++) {
      const p = el.points.getItem(i);
      xy.push([p.x, p.y]);
    }
    const b = el.getBBox();
    if (b.width > 0 || b.height > 0) boxes++;
  }
  series[name] = {points: xy.length, xy, boxes, chart: g.closest('figure').getAttribute('data-chart')};
}
const verdicts = [...document.querySelectorAll('#thresholds tr')].slice(1).map(r => [...r.cells].map(c => c.textContent));
const summary = [...document.querySelectorAll('#summary tr')].slice(1).map(r => [...r.cells].map(c => c.textContent));
const out = document.createElement('pre');
out.id = 'probe';
out.textContent = JSON.stringify({series, phases, charts, duplicates, verdicts, summary});
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

/// What one series must look like on the page.
#[derive(Debug)]
enum Drawn {
    /// A line through these (x, y) data points, in order.
    Line(Vec<(f64, f64)>),
    /// A stacked area of this many points.
    Area(usize),
}

/// What a page must draw for `report` (its JSON): per series, its points in data units, or
/// for a stacked area only how many. Rates are counts over each point's width, percentiles
/// are drawn where there were samples, a stacked area has both edges, and the distribution
/// has one point per row below 100 % of the `.hgrm` text.
fn expected(report: &Value, hgrm: &[(&str, &str)]) -> BTreeMap<String, Drawn> {
    let s = &report["series"];
    let t: Vec<f64> = s["t"]
        .as_array()
        .expect("t")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let widths: Vec<f64> = t
        .iter()
        .scan(0.0, |prev, &x| {
            let w = (x - *prev).max(1e-3);
            *prev = x;
            Some(w)
        })
        .collect();
    let mut want = BTreeMap::new();
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    for ty in ["food", "clothing"] {
        if report[ty]["scheduled"].as_u64() == Some(0)
            && report[ty]["target_rate"].as_f64() == Some(0.0)
        {
            continue;
        }
        for (name, col) in [
            ("asked/s", "asked"),
            ("sent/s", "sent"),
            ("ok/s", "outcomes.2xx"),
            ("late/s", "late"),
            ("skipped/s", "skipped"),
        ] {
            let values = column(s, ty, col).iter().filter_map(Value::as_f64);
            let points = t
                .iter()
                .zip(values.zip(&widths))
                .map(|(&x, (v, w))| (x, v / w))
                .collect();
            want.insert(format!("{ty} {name}"), Drawn::Line(points));
        }
        for (name, col) in [
            ("corrected p99", "corrected_p99_ms"),
            ("corrected p50", "corrected_p50_ms"),
            ("service p99", "service_p99_ms"),
            ("service p50", "service_p50_ms"),
            ("lag p99", "lag_p99_ms"),
        ] {
            let points = t
                .iter()
                .zip(column(s, ty, col))
                .filter_map(|(&x, v)| v.as_f64().map(|v| (x, v)))
                .collect();
            want.insert(format!("{ty} {name}"), Drawn::Line(points));
        }
        for class in ["2xx", "4xx", "5xx", "timeout", "connect_error", "other"] {
            let sum: u64 = column(s, ty, &format!("outcomes.{class}"))
                .iter()
                .filter_map(Value::as_u64)
                .sum();
            *classes.entry(class.to_string()).or_default() += sum;
        }
    }
    for (class, sum) in classes {
        if sum > 0 {
            want.insert(format!("{class}/s"), Drawn::Area(2 * t.len()));
        }
    }
    for (name, text) in hgrm {
        let points = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() == 4 && f[0] != "Value")
            .map(|f| {
                let value: f64 = f[0].parse().expect("value");
                let q: f64 = f[1].parse().expect("quantile");
                ((1.0 / (1.0 - q)).log10(), value)
            })
            .collect();
        want.insert(name.to_string(), Drawn::Line(points));
    }
    want
}

/// Checks the probe's findings against the report: every series drawn once, inside its plot,
/// each line's points where the chart's axes put their values; the verdicts and the totals.
fn check(seen: &Value, report: &Value, hgrm: &[(&str, &str)], what: &str) {
    let want = expected(report, hgrm);
    let series = seen["series"].as_object().expect("series");
    let names: Vec<&String> = series.keys().collect();
    assert_eq!(
        names,
        want.keys().collect::<Vec<_>>(),
        "{what}: the series drawn"
    );
    assert_eq!(
        seen["duplicates"],
        serde_json::json!([]),
        "{what}: drawn twice"
    );
    let num = |v: &Value, i: usize| v[i].as_f64().expect("a number");
    for (name, drawn) in &want {
        let s = &series[name.as_str()];
        let chart = &seen["charts"][s["chart"].as_str().expect("chart")];
        let (x0, x1) = (num(&chart["x"], 0), num(&chart["x"], 1));
        let (y0, y1) = (num(&chart["y"], 0), num(&chart["y"], 1));
        let plot = |i| num(&chart["plot"], i);
        let (left, top, width, height) = (plot(0), plot(1), plot(2), plot(3));
        let xy: Vec<(f64, f64)> = s["xy"]
            .as_array()
            .expect("xy")
            .iter()
            .map(|p| (num(p, 0), num(p, 1)))
            .collect();
        for &(px, py) in &xy {
            let inside = (left - 0.1..=left + width + 0.1).contains(&px)
                && (top - 0.1..=top + height + 0.1).contains(&py);
            assert!(
                inside,
                "{what}: {name} has a point outside its plot: ({px}, {py})"
            );
        }
        match drawn {
            Drawn::Area(n) => assert_eq!(xy.len(), *n, "{what}: points of {name}"),
            Drawn::Line(points) => {
                assert_eq!(xy.len(), points.len(), "{what}: points of {name}");
                if points.len() > 1 {
                    assert!(
                        s["boxes"].as_u64() >= Some(1),
                        "{what}: {name} laid out nothing"
                    );
                }
                // The page writes coordinates to a tenth of a pixel.
                for (&(x, y), &(px, py)) in points.iter().zip(&xy) {
                    let ex = left + (x - x0) / (x1 - x0) * width;
                    let ey = top + height - (y - y0) / (y1 - y0) * height;
                    assert!(
                        (ex - px).abs() < 0.11 && (ey - py).abs() < 0.11,
                        "{what}: {name} at ({x}, {y}) is drawn at ({px}, {py}), not ({ex:.2}, {ey:.2})"
                    );
                }
            }
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
    // One shard's points map one to one onto the merge's (its times become the grid's).
    for ty in ["food", "clothing"] {
        for col in [
            "scheduled",
            "sent",
            "outcomes.2xx",
            "corrected_p99_ms",
            "lag_p99_ms",
        ] {
            assert_eq!(
                column(&merged_value["series"], ty, col),
                column(&value["series"], ty, col),
                "the merge of one shard moved {ty} {col}"
            );
        }
    }

    // And Chromium renders it to an image (the README's picture is made the same way).
    let png = dir.path().join("report.png");
    chromium
        .screenshot(&html, &png, 1100, 3000)
        .expect("screenshot");
}
