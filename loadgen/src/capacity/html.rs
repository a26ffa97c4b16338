//! `loadgen capacity --report-html`: the search as one self-contained page (inline CSS and
//! SVG, no script, nothing fetched), drawn with the run report's chart ([`crate::html`]):
//! the latency–throughput curve (corrected p50 and p99 against the asked rate) with each
//! latency threshold's line and the capacity found marked, achieved against asked rate with
//! the line where they are equal, and the table of steps. Every drawn series carries its
//! name, so the browser test can read the points back.

use std::io::{self, Write};

use super::report::CapacityReport;
use crate::html::svg::{esc, Chart, Stroke, XAxis};
use crate::threshold::{Metric, Threshold};

const HEIGHT: f64 = 320.0;

fn stroke(color: &'static str, dashed: bool, width: f64) -> Stroke {
    Stroke {
        color,
        dashed,
        width,
    }
}

pub fn write(r: &CapacityReport, w: &mut impl Write) -> io::Result<()> {
    let mut page = String::with_capacity(32 * 1024);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    page.push_str(&format!(
        "<title>Capacity search: {}</title><style>{}</style></head><body>\n",
        esc(&r.target),
        crate::html::STYLE
    ));
    page.push_str(&format!(
        "<h1>Capacity search</h1>\n<p id=\"answer\"><b>{}</b></p>\n",
        esc(&r.answer())
    ));
    page.push_str(&format!(
        "<dl><dt>target</dt><dd>{}</dd><dt>thresholds</dt><dd>{}</dd><dt>mix</dt><dd>food {:.0} %, clothing {:.0} %</dd><dt>steps</dt><dd>{} s each, the first {} s not judged; growth ×{}, precision {} %</dd><dt>started</dt><dd>{}</dd><dt>took</dt><dd>{:.0} s</dd><dt>version</dt><dd>{}</dd></dl>\n",
        esc(&r.target),
        esc(&r.thresholds.join(", ")),
        r.mix.food * 100.0,
        r.mix.clothing * 100.0,
        r.settings.step_seconds,
        r.settings.warmup_seconds,
        r.settings.growth,
        r.settings.precision * 100.0,
        esc(r.started_at.as_deref().unwrap_or("-")),
        r.duration_seconds,
        esc(&r.loadgen_version),
    ));
    let mut steps: Vec<_> = r.steps.iter().collect();
    steps.sort_by(|a, b| a.asked_rate.total_cmp(&b.asked_rate));
    let x_max = steps.iter().map(|s| s.asked_rate).fold(1.0, f64::max) * 1.05;
    let latency = |f: fn(&super::report::StepReport) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        steps.iter().map(|s| (s.asked_rate, f(s))).collect()
    };
    let p50 = latency(|s| s.p50_ms);
    let p99 = latency(|s| s.p99_ms);
    let limits: Vec<(String, f64)> = r
        .thresholds
        .iter()
        .filter_map(|t| t.parse::<Threshold>().ok())
        .filter(|t| matches!(t.metric, Metric::Percentile(_)))
        .map(|t| (t.text.clone(), t.limit))
        .collect();
    let y_max = p99
        .iter()
        .chain(&p50)
        .filter_map(|p| p.1)
        .chain(limits.iter().map(|l| l.1))
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.1;
    let mut curve = Chart::new(HEIGHT, (0.0, x_max), y_max, XAxis::Rate, " ms");
    curve.line("p50 corrected", stroke("#6baed6", false, 2.0), &p50);
    curve.line("p99 corrected", stroke("#cb181d", false, 2.0), &p99);
    for (name, limit) in &limits {
        curve.line(
            &format!("SLO {name}"),
            stroke("#555", true, 1.5),
            &[(0.0, Some(*limit)), (x_max, Some(*limit))],
        );
    }
    let y_top = curve.y_top();
    if let Some(rate) = r.capacity.rate {
        curve.line(
            &format!("capacity {rate:.1}/s"),
            stroke("#2ca25f", true, 2.0),
            &[(rate, Some(0.0)), (rate, Some(y_top))],
        );
    }
    page.push_str("<h2>Latency against rate</h2>\n");
    page.push_str(
        &curve.render("Corrected latency (from the intended send time) against the asked rate"),
    );
    let achieved: Vec<(f64, Option<f64>)> = steps
        .iter()
        .map(|s| (s.asked_rate, Some(s.achieved_rate)))
        .collect();
    let mut rates = Chart::new(HEIGHT, (0.0, x_max), x_max, XAxis::Rate, "/s");
    rates.line(
        "achieved = asked",
        stroke("#999", true, 1.0),
        &[(0.0, Some(0.0)), (x_max, Some(x_max))],
    );
    rates.line("achieved", stroke("#3182bd", false, 2.0), &achieved);
    page.push_str("<h2>Achieved against asked</h2>\n");
    page.push_str(&rates.render("Answers a second against the rate asked"));
    page.push_str("<h2>Steps</h2>\n<table id=\"steps\"><tr><th>step</th><th>asked/s</th><th>achieved/s</th><th>p50 ms</th><th>p99 ms</th><th>errors</th><th>lag p99 ms</th><th>judged s</th><th>verdict</th></tr>");
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for s in &r.steps {
        let failed: Vec<String> = s.missed().map(esc).collect();
        page.push_str(&format!(
            "<tr data-step=\"{}\"><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{:.2} %</td><td>{}</td><td>{:.0}{}</td><td>{}{}</td></tr>",
            s.index,
            s.index,
            s.asked_rate,
            s.achieved_rate,
            ms(s.p50_ms),
            ms(s.p99_ms),
            s.error_ratio * 100.0,
            ms(s.lag_p99_ms),
            s.judged_seconds,
            if s.ended_early { " (ended early)" } else { "" },
            s.verdict,
            if failed.is_empty() { String::new() } else { format!(": {}", failed.join(", ")) },
        ));
    }
    page.push_str("</table>\n<p class=\"note\">Open model: each step's rate is offered whatever the answers, and latency counts from each request's intended send time. A step marked generator_limited measured the load generator (its schedule lag p99 over 1 ms, or late or skipped sends), not the service.</p>\n</body></html>\n");
    w.write_all(page.as_bytes())
}
