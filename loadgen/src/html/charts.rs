//! The report's plots, from its numbers alone (so a merged report draws like a run): throughput
//! against the asked rate, latency over time per type, outcomes stacked per interval, schedule
//! lag, late and skipped requests, and the percentile distribution on HdrHistogram's
//! `1/(1-p)` axis. Series names here are what the legend, the tooltips and the browser test
//! read.

use hdrhistogram::Histogram;
use order_server::contract::OrderType;

use super::svg::{Chart, Stroke, XAxis};
use crate::hdr;
use crate::outcome::OutcomeClass;
use crate::report::{PhaseSpan, Report};
use crate::series::{Series, TypeSeries};

/// A named line: its look and its (x, y) points, `None` where it has no value.
type Line = (String, Stroke, Vec<(f64, Option<f64>)>);

const TALL: f64 = 280.0;
const SHORT: f64 = 220.0;

/// Colours per order type: light, middle, dark.
fn palette(t: OrderType) -> [&'static str; 3] {
    match t {
        OrderType::Food => ["#6baed6", "#2171b5", "#08306b"],
        OrderType::Clothing => ["#fd8d3c", "#d94801", "#7f2704"],
    }
}

fn stroke(color: &'static str, dashed: bool, width: f64) -> Stroke {
    Stroke {
        color,
        dashed,
        width,
    }
}

fn outcome_color(c: OutcomeClass) -> &'static str {
    match c {
        OutcomeClass::Success => "#41ab5d",
        OutcomeClass::ClientError => "#fec44f",
        OutcomeClass::ServerError => "#e31a1c",
        OutcomeClass::Timeout => "#6a51a3",
        OutcomeClass::ConnectError => "#525252",
        OutcomeClass::Other => "#8c510a",
    }
}

/// The order types a plot shows: those the run asked for or scheduled anything of.
pub fn shown_types(report: &Report) -> Vec<OrderType> {
    OrderType::ALL
        .into_iter()
        .filter(|t| {
            let r = match t {
                OrderType::Food => &report.food,
                OrderType::Clothing => &report.clothing,
            };
            r.scheduled > 0 || r.target_rate > 0.0
        })
        .collect()
}

/// Every time plot, in reading order.
pub fn over_time(report: &Report, series: &Series) -> Vec<String> {
    let types = shown_types(report);
    let end = series
        .t
        .last()
        .copied()
        .unwrap_or(0.0)
        .max(report.duration_seconds);
    // A rate divides by the width, so a point squeezed to nothing counts as a millisecond.
    let widths: Vec<f64> = series.widths().map(|w| w.max(1e-3)).collect();
    let rate = |counts: &[u64]| -> Vec<(f64, Option<f64>)> {
        series
            .t
            .iter()
            .zip(counts.iter().zip(&widths))
            .map(|(&t, (&n, w))| (t, Some(n as f64 / w)))
            .collect()
    };
    let new_chart = |height: f64, y_max: f64, unit: &'static str, label_phases: bool| {
        let mut c = Chart::new(height, (0.0, end), y_max, XAxis::Seconds, unit);
        shade(&mut c, &report.phases, end, label_phases);
        for e in report.events.iter().take(super::MAX_SHOWN_EVENTS) {
            c.marker(e.at_s, e.kind.as_str(), &e.detail);
        }
        c
    };
    let mut out = Vec::new();

    // Throughput: asked, sent and ok per second, per type.
    let mut lines = Vec::new();
    for &o in &types {
        let s = series.of(o);
        let [light, mid, dark] = palette(o);
        let asked: Vec<(f64, Option<f64>)> = series
            .t
            .iter()
            .zip(s.asked.iter().zip(&widths))
            .map(|(&t, (&a, w))| (t, Some(a / w)))
            .collect();
        let ok = s.outcomes.get(OutcomeClass::Success.as_str());
        lines.push((format!("{o} asked/s"), stroke(light, true, 2.0), asked));
        lines.push((
            format!("{o} sent/s"),
            stroke(mid, false, 1.2),
            rate(&s.sent),
        ));
        lines.push((
            format!("{o} ok/s"),
            stroke(dark, false, 1.8),
            rate(ok.map_or(&[][..], |v| v)),
        ));
    }
    out.push(draw(
        "Throughput: asked (target) vs sent vs ok, per second",
        new_chart(TALL, max_of(&lines), "/s", true),
        lines,
    ));

    // Latency per type: p50 and p99, corrected and service.
    for &o in &types {
        let s = series.of(o);
        let [light, _, dark] = palette(o);
        let at = |v: &[Option<f64>]| -> Vec<(f64, Option<f64>)> {
            series.t.iter().copied().zip(v.iter().copied()).collect()
        };
        let lines = vec![
            (
                format!("{o} corrected p99"),
                stroke(dark, false, 1.8),
                at(&s.corrected_p99_ms),
            ),
            (
                format!("{o} corrected p50"),
                stroke(light, false, 1.5),
                at(&s.corrected_p50_ms),
            ),
            (
                format!("{o} service p99"),
                stroke(dark, true, 1.4),
                at(&s.service_p99_ms),
            ),
            (
                format!("{o} service p50"),
                stroke(light, true, 1.2),
                at(&s.service_p50_ms),
            ),
        ];
        out.push(draw(
            &format!("Latency over time, {o}: p50 and p99 per interval, corrected (from the intended send) and service (from the actual send)"),
            new_chart(SHORT, max_of(&lines), " ms", false),
            lines,
        ));
    }

    // Outcomes per second, both types, stacked by class.
    let layers: Vec<(String, &'static str, Vec<f64>)> = OutcomeClass::ALL
        .iter()
        .map(|&c| {
            let per_s = (0..series.len())
                .map(|i| {
                    let n: u64 = types.iter().map(|&o| count(series.of(o), c, i)).sum();
                    n as f64 / widths[i]
                })
                .collect();
            (format!("{}/s", c.as_str()), outcome_color(c), per_s)
        })
        .collect();
    let stacked_max = (0..series.len())
        .map(|i| layers.iter().map(|l| l.2[i]).sum::<f64>())
        .fold(0.0, f64::max);
    let mut c = new_chart(SHORT, stacked_max, "/s", false);
    c.stacked(&series.t, &layers);
    out.push(c.render("Outcomes per second, stacked by class"));

    // Schedule lag p99 per type.
    let lines: Vec<_> = types
        .iter()
        .map(|&o| {
            let v = series
                .t
                .iter()
                .copied()
                .zip(series.of(o).lag_p99_ms.iter().copied());
            (
                format!("{o} lag p99"),
                stroke(palette(o)[1], false, 1.5),
                v.collect(),
            )
        })
        .collect();
    out.push(draw(
        "Schedule lag: p99 of actual minus intended send time",
        new_chart(SHORT, max_of(&lines), " ms", false),
        lines,
    ));

    // Late and skipped per second.
    let mut lines = Vec::new();
    for &o in &types {
        let s = series.of(o);
        let [_, mid, dark] = palette(o);
        lines.push((
            format!("{o} late/s"),
            stroke(mid, false, 1.5),
            rate(&s.late),
        ));
        lines.push((
            format!("{o} skipped/s"),
            stroke(dark, true, 1.5),
            rate(&s.skipped),
        ));
    }
    out.push(draw(
        "Late (sent over 10 ms after the intended time) and skipped (never sent) per second",
        new_chart(SHORT, max_of(&lines), "/s", false),
        lines,
    ));
    out
}

/// The percentile distribution of the whole run, corrected vs service, on `1/(1-p)`; `None`
/// without samples.
pub fn distribution(report: &Report) -> Option<String> {
    let decode = |s: &str| hdr::decode(s).ok().filter(|h| !h.is_empty());
    let corrected = decode(&report.total.histograms.corrected)?;
    let service = decode(&report.total.histograms.service);
    let points = |h: &Histogram<u64>| -> Vec<(f64, Option<f64>)> {
        hdr::distribution(h)
            .into_iter()
            .map(|(q, ms)| ((1.0 / (1.0 - q)).log10(), Some(ms)))
            .collect()
    };
    let mut lines = vec![(
        "corrected (from the intended send)".to_string(),
        stroke("#cb181d", false, 2.0),
        points(&corrected),
    )];
    if let Some(s) = &service {
        lines.push((
            "service (from the actual send)".to_string(),
            stroke("#2171b5", false, 2.0),
            points(s),
        ));
    }
    let x_max = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.0))
        .fold(2.0, f64::max)
        .ceil();
    let chart = Chart::new(TALL, (0.0, x_max), max_of(&lines), XAxis::Percentile, " ms");
    Some(draw(
        "Latency by percentile (HdrHistogram's 1/(1-p) axis): a gap between the lines is coordinated omission corrected",
        chart,
        lines,
    ))
}

fn draw(title: &str, mut chart: Chart, lines: Vec<Line>) -> String {
    for (name, s, points) in &lines {
        chart.line(name, *s, points);
    }
    chart.render(title)
}

fn max_of(lines: &[Line]) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.2.iter().filter_map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

fn count(s: &TypeSeries, c: OutcomeClass, i: usize) -> u64 {
    s.outcomes
        .get(c.as_str())
        .and_then(|v| v.get(i))
        .copied()
        .unwrap_or(0)
}

/// Phases as alternating shaded spans (a single phase is not marked).
fn shade(chart: &mut Chart, phases: &[PhaseSpan], end: f64, label: bool) {
    if phases.len() < 2 {
        return;
    }
    for (i, p) in phases.iter().enumerate() {
        let to = p.end_seconds.unwrap_or(end);
        chart.span(p.start_seconds, to, &p.name, i % 2 == 1, label);
    }
}
