//! The capacity search's HTML page in a real browser: a short search (the library's, as the
//! binary runs it) against the order server with a one-worker queue, its page opened in
//! headless Chromium with a probe that reads each drawn series' points through the SVG DOM
//! and maps them back to data units by the chart's own axes. Every point of the
//! latency–throughput curve (p50 and p99 against the asked rate) and of achieved against
//! asked must sit where the JSON result puts it, the SLO line at the threshold, the capacity
//! marked at the rate found; and the page fetches nothing.

use std::time::Duration;

use clap::Parser;
use order_metrics_checks::browser::Chromium;
use order_server::config::QueueModel;
use order_server::test_kit::{quiet_config, TestServer};
use serde_json::Value;

const PROBE: &str = r#"<script>
const charts = {}, series = {};
for (const f of document.querySelectorAll('figure')) {
  const svg = f.querySelector('svg'), nums = a => svg.getAttribute(a).split(' ').map(Number);
  charts[f.getAttribute('data-chart')] = {x: nums('data-x'), y: nums('data-y'), plot: nums('data-plot')};
}
for (const g of document.querySelectorAll('[data-series]')) {
  const xy = [];
  for (const el of g.querySelectorAll('polyline')) {
    for (let i = 0; i < el.points.numberOfItems; i++) { const p = el.points.getItem(i); xy.push([p.x, p.y]); }
  }
  series[g.getAttribute('data-series')] = {xy, chart: g.closest('figure').getAttribute('data-chart')};
}
const out = document.createElement('pre');
out.id = 'probe';
out.textContent = JSON.stringify({charts, series, resources: performance.getEntriesByType('resource').length,
  answer: document.getElementById('answer').textContent, rows: document.querySelectorAll('#steps tr').length - 1});
document.body.appendChild(out);
</script>"#;

/// A point in pixels back in data units, by the chart's axes.
fn data(chart: &Value, px: f64, py: f64) -> (f64, f64) {
    let n = |k: &str, i: usize| chart[k][i].as_f64().expect("axis");
    let (x0, x1, y0, y1) = (n("x", 0), n("x", 1), n("y", 0), n("y", 1));
    let (left, top, w, h) = (n("plot", 0), n("plot", 1), n("plot", 2), n("plot", 3));
    (
        x0 + (px - left) / w * (x1 - x0),
        y0 + (top + h - py) / h * (y1 - y0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_chromium,
    ignore = "chromium not on PATH: apt-get install chromium"
)]
async fn the_capacity_curve_draws_the_search_s_numbers_in_chromium() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let mut config = quiet_config();
    config.queue = Some(QueueModel {
        workers: 1,
        service_time: Duration::from_millis(20),
    });
    let server = TestServer::start(config).await;
    let cli = loadgen::capacity::cli::CapacityCli::try_parse_from([
        "loadgen capacity",
        "--target",
        &format!("http://{}", server.addr),
        "--threshold",
        "p99<300ms",
        "--start-rate",
        "8",
        "--step",
        "3s",
        "--warmup",
        "1s",
        "--precision",
        "0.2",
        "--generator-lag",
        "20ms",
        "--no-progress",
    ])
    .expect("flags");
    let (run, search) = cli.into_configs().expect("configs");
    let report = loadgen::capacity::search(run, search, std::future::pending(), |_| {})
        .await
        .expect("the search");
    let json: Value = serde_json::to_value(&report).expect("JSON");
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("capacity.html");
    let mut html = Vec::new();
    loadgen::capacity::html::write(&report, &mut html).expect("page");
    let html = String::from_utf8(html).expect("utf-8");
    std::fs::write(&page, html.replace("</body>", &format!("{PROBE}</body>"))).expect("write");
    let dom = chromium.dump_dom(&page).expect("chromium");
    let start = dom.find("<pre id=\"probe\">").expect("the probe ran") + 16;
    let end = start + dom[start..].find("</pre>").expect("probe end");
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let seen: Value = serde_json::from_str(&text).expect("probe JSON");

    let mut steps: Vec<&Value> = json["steps"].as_array().expect("steps").iter().collect();
    assert!(steps.len() >= 3, "a curve needs steps: {json}");
    assert_eq!(seen["rows"].as_u64(), Some(steps.len() as u64));
    assert_eq!(
        seen["resources"].as_u64(),
        Some(0),
        "the page fetched something"
    );
    steps.sort_by(|a, b| {
        a["asked_rate"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&b["asked_rate"].as_f64().unwrap_or(0.0))
    });
    let check = |name: &str, want: Vec<(f64, f64)>| {
        let s = &seen["series"][name];
        let chart = &seen["charts"][s["chart"]
            .as_str()
            .unwrap_or_else(|| panic!("no series {name}: {seen}"))];
        let got: Vec<(f64, f64)> = s["xy"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| {
                data(
                    chart,
                    p[0].as_f64().unwrap_or(0.0),
                    p[1].as_f64().unwrap_or(0.0),
                )
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{name}: {got:?} vs {want:?}");
        // Half a pixel either way, in data units.
        let tol = |k: &str, i: usize| {
            let span = chart[k][1].as_f64().unwrap_or(1.0) - chart[k][0].as_f64().unwrap_or(0.0);
            let px = chart["plot"][i].as_f64().unwrap_or(1.0);
            span / px
        };
        for ((gx, gy), (wx, wy)) in got.iter().zip(&want) {
            assert!((gx - wx).abs() <= tol("x", 2), "{name}: x {gx} vs {wx}");
            assert!((gy - wy).abs() <= tol("y", 3), "{name}: y {gy} vs {wy}");
        }
    };
    let col = |k: &str| -> Vec<(f64, f64)> {
        steps
            .iter()
            .filter_map(|s| Some((s["asked_rate"].as_f64()?, s[k].as_f64()?)))
            .collect()
    };
    check("p50 corrected", col("p50_ms"));
    check("p99 corrected", col("p99_ms"));
    check("achieved", col("achieved_rate"));
    let x_end = seen["charts"][seen["series"]["SLO p99<300ms"]["chart"]
        .as_str()
        .expect("SLO chart")]["x"][1]
        .as_f64()
        .expect("x");
    check("SLO p99<300ms", vec![(0.0, 300.0), (x_end, 300.0)]);
    let rate = json["capacity"]["rate"].as_f64().expect("a capacity");
    let name = format!("capacity {rate:.1}/s");
    let knee = &seen["series"][name.as_str()]["xy"];
    let chart = &seen["charts"][seen["series"][name.as_str()]["chart"]
        .as_str()
        .expect("knee chart")];
    for p in knee.as_array().expect("knee points") {
        let (x, _) = data(
            chart,
            p[0].as_f64().unwrap_or(0.0),
            p[1].as_f64().unwrap_or(0.0),
        );
        assert!(
            (x - rate).abs() < 0.01 * rate.max(1.0),
            "the knee at {x}, the capacity {rate}"
        );
    }
    assert!(
        seen["answer"]
            .as_str()
            .is_some_and(|a| a.contains(&format!("{rate:.1}/s"))),
        "{seen}"
    );
}
