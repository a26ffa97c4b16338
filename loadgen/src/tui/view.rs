//! Draws one [`Snapshot`] with ratatui: a header (target, phase, time left, keys), per type a
//! chart of asked against achieved rate over the last minute, the last ten seconds'
//! percentiles (corrected and service) and schedule lag, outcomes by class with in flight,
//! late and skipped, the thresholds so far, the active faults and scenario, and the latest
//! events and log lines. Every size of terminal gets a frame; a small one gets less of it.

use order_server::contract::OrderType;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Cell, Chart, Dataset, GraphType, LegendPosition, Paragraph, Row, Table,
    Wrap,
};
use ratatui::Frame;

use super::snapshot::{Snapshot, CHART_SECONDS};
use crate::outcome::OutcomeClass;

const COLORS: [Color; 2] = [Color::LightRed, Color::LightBlue];

pub fn draw(f: &mut Frame, s: &Snapshot) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Percentage(50),
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Min(6),
        ])
        .split(f.area());
    header(f, rows[0], s);
    let charts = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(rows[1]);
    for t in OrderType::ALL {
        chart(f, charts[t.index()], s, t);
    }
    latency(f, rows[2], s);
    outcomes(f, rows[3], s);
    let bottom = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([
            Constraint::Percentage(34),
            Constraint::Percentage(33),
            Constraint::Percentage(33),
        ])
        .split(rows[4]);
    thresholds(f, bottom[0], s);
    faults(f, bottom[1], s);
    events(f, bottom[2], s);
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn header(f: &mut Frame, area: Rect, s: &Snapshot) {
    let clock = match s.end {
        Some(end) => format!(
            "{:.0} s of {end:.0} s, {:.0} s left",
            s.elapsed,
            (end - s.elapsed).max(0.0)
        ),
        None => format!("{:.0} s, until stopped", s.elapsed),
    };
    let state = if s.stopping {
        Span::styled(
            " stopping: draining, then the report ",
            Style::default().fg(Color::Yellow),
        )
    } else {
        Span::raw(" q stop · +/- rates ±10 % ")
    };
    let line = Line::from(vec![
        Span::styled("loadgen ", Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "→ {} · phase {} · {clock} ·",
            s.target,
            s.phase.as_deref().unwrap_or("-")
        )),
        state,
    ]);
    f.render_widget(Paragraph::new(line), area);
}

fn chart(f: &mut Frame, area: Rect, s: &Snapshot, t: OrderType) {
    let i = t.index();
    let asked: Vec<(f64, f64)> = s.history.iter().map(|p| (p.t, p.asked[i])).collect();
    let achieved: Vec<(f64, f64)> = s.history.iter().map(|p| (p.t, p.achieved[i])).collect();
    let t1 = s.history.last().map_or(s.elapsed, |p| p.t).max(1.0);
    let t0 = (t1 - CHART_SECONDS as f64).max(0.0);
    let top = asked
        .iter()
        .chain(&achieved)
        .map(|p| p.1)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let title = format!(
        " {}: asked {:.1}/s, achieved {:.1}/s (last 60 s) ",
        t.as_str(),
        s.rates[i],
        s.recent[i].achieved_rate
    );
    let data = vec![
        Dataset::default()
            .name("asked")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Gray))
            .data(&asked),
        Dataset::default()
            .name("achieved")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(COLORS[i]))
            .data(&achieved),
    ];
    let chart = Chart::new(data)
        .legend_position(Some(LegendPosition::TopLeft))
        .block(Block::default().borders(Borders::ALL).title(title))
        .x_axis(
            Axis::default()
                .bounds([t0, t1])
                .labels([format!("{t0:.0} s"), format!("{t1:.0} s")]),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(["0".to_string(), format!("{top:.0}")]),
        );
    f.render_widget(chart, area);
}

fn latency(f: &mut Frame, area: Rect, s: &Snapshot) {
    let header = Row::new([
        "last 10 s",
        "p50",
        "p90",
        "p99 ms",
        "service p50",
        "p90",
        "p99 ms",
        "lag p99 ms",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = OrderType::ALL.map(|t| {
        let r = &s.recent[t.index()];
        Row::new(vec![
            Cell::from(t.as_str()).style(Style::default().fg(COLORS[t.index()])),
            Cell::from(ms(r.p50_ms)),
            Cell::from(ms(r.p90_ms)),
            Cell::from(ms(r.p99_ms)),
            Cell::from(ms(r.service_p50_ms)),
            Cell::from(ms(r.service_p90_ms)),
            Cell::from(ms(r.service_p99_ms)),
            Cell::from(ms(r.lag_p99_ms)),
        ])
    });
    let table = Table::new(rows, [Constraint::Ratio(1, 8); 8])
        .header(header)
        .block(
            Block::default()
                .borders(Borders::TOP)
                .title(" latency: corrected, then service "),
        );
    f.render_widget(table, area);
}

fn outcomes(f: &mut Frame, area: Rect, s: &Snapshot) {
    let mut head: Vec<String> = vec![format!("in flight {}", s.in_flight)];
    head.extend(OutcomeClass::ALL.iter().map(|o| o.as_str().to_string()));
    head.extend(["late".into(), "skipped".into()]);
    let rows = OrderType::ALL.map(|t| {
        let c = &s.counts[t.index()];
        let mut cells = vec![Cell::from(t.as_str()).style(Style::default().fg(COLORS[t.index()]))];
        cells.extend(
            OutcomeClass::ALL
                .iter()
                .map(|o| Cell::from(c.outcomes[o.index()].to_string())),
        );
        cells.push(Cell::from(c.late.to_string()));
        cells.push(Cell::from(c.skipped.to_string()));
        Row::new(cells)
    });
    let widths = [Constraint::Ratio(1, 9); 9];
    let table = Table::new(rows, widths)
        .header(Row::new(head).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(
            Block::default()
                .borders(Borders::TOP)
                .title(" outcomes so far "),
        );
    f.render_widget(table, area);
}

fn thresholds(f: &mut Frame, area: Rect, s: &Snapshot) {
    let lines: Vec<Line> = if s.checks.is_empty() {
        vec![Line::from("none set")]
    } else {
        s.checks
            .iter()
            .map(|c| {
                let (mark, color) = if c.passed {
                    ("passing", Color::Green)
                } else {
                    ("FAILING", Color::Red)
                };
                let actual = if c.actual.is_finite() {
                    format!("{:.3}", c.actual)
                } else {
                    "nothing yet".into()
                };
                Line::from(vec![
                    Span::styled(format!("{mark} "), Style::default().fg(color)),
                    Span::raw(format!("{} ({actual})", c.name)),
                ])
            })
            .collect()
    };
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" thresholds so far "),
        ),
        area,
    );
}

fn faults(f: &mut Frame, area: Rect, s: &Snapshot) {
    let mut lines: Vec<Line> = s
        .faults
        .iter()
        .map(|(what, left)| Line::from(format!("{what}, {left:.0} s left")))
        .collect();
    if lines.is_empty() {
        lines.push(Line::from("no fault switched on"));
    }
    if let Some(r) = &s.scenario {
        lines.push(Line::from(format!(
            "scenario {} until {:.0} s",
            r.name, r.to
        )));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" faults ")),
        area,
    );
}

fn events(f: &mut Frame, area: Rect, s: &Snapshot) {
    let mut lines: Vec<Line> = s
        .events
        .iter()
        .map(|e| {
            Line::from(format!(
                "{:.0} s {} ({}): {}",
                e.at_s,
                e.kind.as_str(),
                e.source.as_str(),
                e.detail
            ))
        })
        .collect();
    lines.extend(
        s.logs
            .iter()
            .map(|l| Line::styled(l.clone(), Style::default().fg(Color::DarkGray))),
    );
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" events and messages "),
        ),
        area,
    );
}
