//! `--report-html`: the report as one self-contained HTML page that opens offline: inline CSS
//! and SVG drawn here in Rust, no script and nothing fetched. It holds what the run was (target,
//! scenario, command line, version, start), the thresholds' verdicts, the summary table, the
//! plots over time and the percentile distribution. Every text from the report is escaped
//! (a scenario's phase names and the target come from users).
//!
//! Why hand-drawn SVG and not `plotters` or a JS chart library: each drawn series carries
//! `data-series` and a `<title>` (what the tooltips and the browser test read), the `1/(1-p)`
//! axis is a custom one either way, text is laid out by the browser without a font backend at
//! build time, and an hour-long run's page is about a megabyte with no script.

use std::io::{self, Write};

use order_server::contract::OrderType;

use crate::report::{Latency, Report, TypeReport};

mod charts;
pub(crate) mod svg;

use svg::esc;

pub(crate) const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;max-width:1000px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:6px 0}
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}th:first-child,td:first-child{text-align:left}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}dt{color:#666}dd{margin:0;word-break:break-all}
code{font:12px ui-monospace,Menlo,Consolas,monospace}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
figure{margin:18px 0}figcaption{font-weight:600;margin-bottom:4px}
svg{display:block;font:11px system-ui,sans-serif}.tick{fill:#555}.phase-label{fill:#444;font-size:11px}
.legend span{display:inline-block;margin:2px 14px 2px 0;font-size:12px}.legend i{display:inline-block;width:22px;margin-right:5px;vertical-align:middle}
.note{color:#666}
"#;

/// Writes the page for `report`.
pub fn write(report: &Report, w: &mut impl Write) -> io::Result<()> {
    let mut page = String::with_capacity(64 * 1024);
    let title = match &report.scenario {
        Some(s) => format!("Load test: {s}"),
        None => "Load test".to_string(),
    };
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    page.push_str(&format!(
        "<title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    ));
    page.push_str(&format!("<h1>{}</h1>\n", esc(&title)));
    about(report, &mut page);
    verdicts(report, &mut page);
    summary(report, &mut page);
    page.push_str("<h2>Over time</h2>\n");
    match &report.series {
        Some(s) if !s.is_empty() => {
            page.push_str(&format!(
                "<p class=\"note\">One point per {} s: each point ends its interval.</p>\n",
                trim(s.interval_seconds)
            ));
            for chart in charts::over_time(report, s) {
                page.push_str(&chart);
            }
        }
        _ => page.push_str("<p class=\"note\">No time series in this report: the run had --no-series, or a merged shard had no series or no start time.</p>\n"),
    }
    events(report, &mut page);
    page.push_str("<h2>Latency distribution</h2>\n");
    match charts::distribution(report) {
        Some(chart) => page.push_str(&chart),
        None => page.push_str("<p class=\"note\">No latency samples.</p>\n"),
    }
    page.push_str("</body></html>\n");
    w.write_all(page.as_bytes())
}

/// What was run: target, scenario, start, duration, shard, command line, version.
fn about(r: &Report, page: &mut String) {
    let target = crate::redact::without_credentials(&r.target).into_owned();
    let mut rows: Vec<(&str, String)> = vec![("target", target)];
    if let Some(s) = &r.scenario {
        rows.push(("scenario", s.clone()));
    }
    if let Some(at) = &r.started_at {
        rows.push(("started", at.clone()));
    }
    rows.push((
        "duration",
        format!("{:.1} s (stopped by {})", r.duration_seconds, r.stopped_by),
    ));
    if r.shard.count > 1 {
        rows.push(("shard", format!("{} of {}", r.shard.index, r.shard.count)));
    }
    if !r.phases.is_empty() && r.phases.len() > 1 {
        let names: Vec<String> = r
            .phases
            .iter()
            .map(|p| match p.end_seconds {
                Some(e) => format!("{} ({}–{} s)", p.name, trim(p.start_seconds), trim(e)),
                None => format!("{} (from {} s)", p.name, trim(p.start_seconds)),
            })
            .collect();
        rows.push(("phases", names.join(", ")));
    }
    let command = if r.command_line.is_empty() {
        "(merged from shard reports)".to_string()
    } else {
        r.command_line.join(" ")
    };
    page.push_str("<dl>");
    for (k, v) in rows {
        page.push_str(&format!("<dt>{k}</dt><dd>{}</dd>", esc(&v)));
    }
    page.push_str(&format!(
        "<dt>command</dt><dd><code>{}</code></dd><dt>version</dt><dd>loadgen {}, report schema {}</dd></dl>\n",
        esc(&command),
        esc(&r.loadgen_version),
        r.schema_version
    ));
}

/// The most live changes a page marks and lists: a run steered by a script can make
/// thousands, and each is drawn on every plot. The JSON report keeps them all.
pub const MAX_SHOWN_EVENTS: usize = 500;

/// The live changes, as the time plots mark them.
fn events(r: &Report, page: &mut String) {
    if r.events.is_empty() {
        return;
    }
    let more = r.events.len().saturating_sub(MAX_SHOWN_EVENTS);
    let note = match more {
        0 => "Marked on the plots above.".to_string(),
        n => format!("The first {MAX_SHOWN_EVENTS}, marked on the plots above; {n} more are in the JSON report."),
    };
    page.push_str(&format!("<h2>Live changes</h2>\n<p class=\"note\">{note}</p>\n<table id=\"events\"><tr><th>at</th><th>change</th><th>detail</th><th>from</th><th>wall clock</th></tr>"));
    for e in r.events.iter().take(MAX_SHOWN_EVENTS) {
        page.push_str(&format!(
            "<tr><td>{} s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            trim((e.at_s * 10.0).round() / 10.0),
            e.kind.as_str(),
            esc(&e.detail),
            e.source.as_str(),
            esc(&e.wall_clock),
        ));
    }
    page.push_str("</table>\n");
}

/// The thresholds and the overall verdict.
fn verdicts(r: &Report, page: &mut String) {
    page.push_str("<h2>Thresholds</h2>\n");
    if let Some(why) = r.unreached() {
        page.push_str(&format!("<p class=\"fail\">{}</p>\n", esc(&why)));
    }
    if r.thresholds.is_empty() {
        page.push_str("<p class=\"note\">None set.</p>\n");
        return;
    }
    page.push_str(
        "<table id=\"thresholds\"><tr><th>threshold</th><th>actual</th><th>verdict</th></tr>",
    );
    for c in &r.thresholds {
        let (class, word) = if c.passed {
            ("pass", "passed")
        } else {
            ("fail", "MISSED")
        };
        page.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
            esc(&c.name),
            if c.actual.is_finite() {
                trim(c.actual)
            } else {
                "nothing to judge".into()
            },
        ));
    }
    page.push_str("</table>\n");
}

/// Counts, rates and latencies per type and in total.
fn summary(r: &Report, page: &mut String) {
    page.push_str("<h2>Summary</h2>\n<table id=\"summary\"><tr><th></th><th>scheduled</th><th>sent</th><th>ok</th><th>failed</th><th>late</th><th>skipped</th><th>target/s</th><th>scheduled/s</th><th>achieved/s</th><th>error ratio</th></tr>");
    let rows: [(&str, &TypeReport); 3] = [
        (OrderType::Food.as_str(), &r.food),
        (OrderType::Clothing.as_str(), &r.clothing),
        ("total", &r.total),
    ];
    for (name, t) in rows {
        page.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.4}</td></tr>",
            t.scheduled, t.sent, t.ok, t.failed, t.late, t.skipped, t.target_rate, t.scheduled_rate, t.achieved_rate, t.error_ratio
        ));
    }
    page.push_str("</table>\n<table id=\"latency\"><tr><th>latency (ms)</th><th>count</th><th>min</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    for (name, t) in rows {
        for (kind, l) in [
            ("corrected", &t.latency_corrected),
            ("service", &t.latency_service),
            ("schedule lag", &t.schedule_lag),
        ] {
            latency_row(page, &format!("{name} {kind}"), l);
        }
    }
    page.push_str("</table>\n");
    let outcomes: Vec<String> = r
        .total
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    page.push_str(&format!("<p>Outcomes: {}</p>\n", esc(&outcomes.join(", "))));
}

fn latency_row(page: &mut String, name: &str, l: &Latency) {
    page.push_str(&format!(
        "<tr><td>{name}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
        l.count, l.min_ms, l.mean_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
    ));
}

/// A number without trailing zeros (up to four decimals).
fn trim(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dispatch::StopReason;
    use crate::recorder::Recorder;
    use crate::report::{PhaseSpan, Thresholds};

    #[test]
    fn text_from_users_is_escaped_and_a_report_without_series_says_so() {
        let r = Recorder::new(None, true);
        r.scheduled(OrderType::Food);
        let mut report = Report::build(
            "http://x/<b>".into(),
            Some("<script>alert(1)</script>".into()),
            StopReason::Duration,
            Duration::from_secs(1),
            &r.snapshot(),
            [1.0, 0.0],
            &Thresholds::default(),
        );
        report.phases = vec![
            PhaseSpan {
                name: r#"a"><img src=x onerror=alert(2)>"#.into(),
                start_seconds: 0.0,
                end_seconds: Some(1.0),
            },
            PhaseSpan {
                name: "b".into(),
                start_seconds: 1.0,
                end_seconds: None,
            },
        ];
        report.command_line = vec!["loadgen".into(), "--scenario".into(), "<x>&".into()];
        let mut page = Vec::new();
        write(&report, &mut page).expect("write");
        let page = String::from_utf8(page).expect("utf8");
        for raw in ["<script", "<img", "<b>", "<x>"] {
            assert!(!page.contains(raw), "{raw} unescaped");
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;x&gt;&amp;"));
        assert!(page.contains("No time series in this report"));
        assert!(page.contains("No latency samples"));
    }
}
