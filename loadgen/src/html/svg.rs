//! A small SVG chart: one plot area with linear axes (or HdrHistogram's percentile axis on x),
//! shaded spans, lines broken at missing values and stacked areas, each drawn element tagged
//! with `data-series` and a `<title>` naming it, so a reader hovering and a test reading the
//! DOM both know what it shows. The caller gives data in data units; this module owns the
//! mapping to pixels, the "nice" ticks and the escaping of every text.

use std::fmt::Write;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;
/// More ticks than any axis here draws.
const MAX_TICKS: usize = 24;

/// How the x axis is labelled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XAxis {
    /// Seconds from the start of the run.
    Seconds,
    /// `log10(1/(1-p))`, labelled as percentiles (HdrHistogram's plot).
    Percentile,
    /// Requests a second (the capacity search's curve).
    Rate,
}

/// One line's look.
#[derive(Debug, Clone, Copy)]
pub struct Stroke {
    pub color: &'static str,
    pub dashed: bool,
    pub width: f64,
}

#[derive(Debug)]
pub struct Chart {
    height: f64,
    x: (f64, f64),
    y: (f64, f64),
    x_axis: XAxis,
    y_unit: &'static str,
    body: String,
    legend: Vec<(String, Stroke)>,
}

impl Chart {
    /// A chart over `x` (data range), its y axis from 0 to at least `y_max` (rounded up to a
    /// nice tick), `y_unit` written after the tick labels.
    pub fn new(
        height: f64,
        x: (f64, f64),
        y_max: f64,
        x_axis: XAxis,
        y_unit: &'static str,
    ) -> Self {
        let x = if x.1 > x.0 { x } else { (x.0, x.0 + 1.0) };
        // Nothing above zero (or too little to tick) still gets an axis from 0 to 1; the top
        // stays finite (what a merge accepts is far below this bound).
        let y_max = if y_max.is_finite() && y_max > 1e-9 {
            y_max.min(1e15)
        } else {
            1.0
        };
        let step = nice_step(y_max);
        Chart {
            height,
            x,
            y: (0.0, step * (y_max / step).ceil()),
            x_axis,
            y_unit,
            body: String::new(),
            legend: Vec::new(),
        }
    }

    /// The top of the y axis, in data units.
    pub fn y_top(&self) -> f64 {
        self.y.1
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        let h = self.height - TOP - BOTTOM;
        TOP + h - (y.clamp(self.y.0, self.y.1) - self.y.0) / (self.y.1 - self.y.0) * h
    }

    /// A span from `x0` to `x1`, shaded or not, its name written at its top left (and as its
    /// tooltip) if `label`.
    pub fn span(&mut self, x0: f64, x1: f64, name: &str, shade: bool, label: bool) {
        let (a, b) = (self.px(x0.max(self.x.0)), self.px(x1.min(self.x.1)));
        if b <= a {
            return;
        }
        let fill = if shade { "#f2f2f2" } else { "#ffffff" };
        let _ = write!(
            self.body,
            r##"<g class="phase" data-phase="{l}">{title}<rect x="{a:.1}" y="{TOP}" width="{w:.1}" height="{h:.1}" fill="{fill}"/><line x1="{a:.1}" y1="{TOP}" x2="{a:.1}" y2="{yb:.1}" stroke="#bbb" stroke-dasharray="2 3"/><text x="{tx:.1}" y="{ty:.1}" class="phase-label">{t}</text></g>"##,
            l = esc(name),
            t = if label { esc(name) } else { String::new() },
            // Named once per page (the plot that labels them): a page repeats every phase.
            title = if label {
                format!("<title>phase {}</title>", esc(name))
            } else {
                String::new()
            },
            w = b - a,
            h = self.height - TOP - BOTTOM,
            yb = self.height - BOTTOM,
            tx = a + 4.0,
            ty = TOP + 12.0,
        );
    }

    /// A live change at `x`: a vertical marker with the event as its tooltip.
    pub fn marker(&mut self, x: f64, kind: &str, detail: &str) {
        if !(self.x.0..=self.x.1).contains(&x) {
            return;
        }
        let a = self.px(x);
        let _ = write!(
            self.body,
            r##"<g class="event" data-kind="{k}" data-at="{x}"><title>{k} at {x:.1} s: {d}</title><line x1="{a:.1}" y1="{TOP}" x2="{a:.1}" y2="{yb:.1}" stroke="#7048e8" stroke-width="1.5"/><path d="M{l:.1},{TOP} h7 l-3.5,6 z" fill="#7048e8"/></g>"##,
            k = esc(kind),
            d = esc(detail),
            yb = self.height - BOTTOM,
            l = a - 3.5,
        );
    }

    /// A line through the points, broken where a value is missing.
    pub fn line(&mut self, name: &str, stroke: Stroke, points: &[(f64, Option<f64>)]) {
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in points {
            match y {
                Some(y) if y.is_finite() && x.is_finite() => {
                    if let Some(run) = runs.last_mut() {
                        run.push((x, y));
                    }
                }
                _ => runs.push(Vec::new()),
            }
        }
        let dash = if stroke.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            self.body,
            r#"<g data-series="{}"><title>{}</title>"#,
            esc(name),
            esc(name)
        );
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let mut pts = String::with_capacity(run.len() * 12);
            for &(x, y) in run {
                let _ = write!(pts, "{:.1},{:.1} ", self.px(x), self.py(y));
            }
            // A lone point has no length to stroke: a dot shows it.
            if run.len() == 1 {
                let _ = write!(
                    self.body,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#,
                    self.px(run[0].0),
                    self.py(run[0].1),
                    stroke.color
                );
            }
            let _ = write!(
                self.body,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{}"{dash} stroke-linejoin="round"/>"#,
                pts.trim_end(),
                stroke.color,
                stroke.width
            );
        }
        self.body.push_str("</g>");
        self.legend.push((name.to_string(), stroke));
    }

    /// Areas stacked from 0: each layer (name, colour, values at `xs`) drawn on the ones before.
    /// A layer that is zero throughout is left out.
    pub fn stacked(&mut self, xs: &[f64], layers: &[(String, &'static str, Vec<f64>)]) {
        let mut base = vec![0.0; xs.len()];
        for (name, color, values) in layers {
            if values.iter().all(|v| *v == 0.0) {
                continue;
            }
            let top: Vec<f64> = base.iter().zip(values).map(|(b, v)| b + v).collect();
            let mut pts = String::new();
            for (x, y) in xs.iter().zip(&top) {
                let _ = write!(pts, "{:.1},{:.1} ", self.px(*x), self.py(*y));
            }
            for (x, y) in xs.iter().zip(&base).rev() {
                let _ = write!(pts, "{:.1},{:.1} ", self.px(*x), self.py(*y));
            }
            let _ = write!(
                self.body,
                r#"<g data-series="{n}"><title>{n}</title><polygon points="{}" fill="{color}" fill-opacity="0.85" stroke="{color}" stroke-width="0.5"/></g>"#,
                pts.trim_end(),
                n = esc(name),
            );
            self.legend.push((
                name.clone(),
                Stroke {
                    color,
                    dashed: false,
                    width: 8.0,
                },
            ));
            base = top;
        }
    }

    /// The chart as an `<svg>` with its legend after it.
    pub fn render(&self, title: &str) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<figure class="chart" data-chart="{t}"><figcaption>{t}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {h}" width="100%" role="img" aria-label="{t}" data-x="{} {}" data-y="{} {}" data-plot="{LEFT} {TOP} {pw} {ph}">"#,
            self.x.0,
            self.x.1,
            self.y.0,
            self.y.1,
            t = esc(title),
            h = self.height,
            pw = WIDTH - LEFT - RIGHT,
            ph = self.height - TOP - BOTTOM,
        );
        self.axes(&mut s);
        s.push_str(&self.body);
        let _ = write!(
            s,
            r##"<rect class="frame" x="{LEFT}" y="{TOP}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#888"/></svg><div class="legend">"##,
            w = WIDTH - LEFT - RIGHT,
            h = self.height - TOP - BOTTOM,
        );
        for (name, stroke) in &self.legend {
            let style = if stroke.dashed { "dashed" } else { "solid" };
            let _ = write!(
                s,
                r#"<span><i style="border-top:3px {style} {}"></i>{}</span>"#,
                stroke.color,
                esc(name)
            );
        }
        s.push_str("</div></figure>\n");
        s
    }

    fn axes(&self, s: &mut String) {
        let step = nice_step(self.y.1);
        // A nice step cuts the axis into at most ten parts; the bound holds whatever the floats.
        for k in 0..=MAX_TICKS {
            let y = k as f64 * step;
            if y > self.y.1 + step * 1e-6 {
                break;
            }
            let py = self.py(y);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{x2}" y2="{py:.1}" stroke="#e4e4e4"/><text x="{tx}" y="{ty:.1}" text-anchor="end" class="tick">{}{}</text>"##,
                number(y),
                self.y_unit,
                x2 = WIDTH - RIGHT,
                tx = LEFT - 6.0,
                ty = py + 4.0,
            );
        }
        let ticks: Vec<(f64, String)> = match self.x_axis {
            XAxis::Seconds => {
                let step = time_step(self.x.1 - self.x.0);
                let first = (self.x.0 / step).ceil();
                (0..=MAX_TICKS)
                    .map(|k| (first + k as f64) * step)
                    .take_while(|t| *t <= self.x.1 + step * 1e-6)
                    .map(|t| (t, clock(t)))
                    .collect()
            }
            XAxis::Rate => {
                let step = nice_step(self.x.1);
                (0..=MAX_TICKS)
                    .map(|k| k as f64 * step)
                    .filter(|x| *x >= self.x.0 - step * 1e-6)
                    .take_while(|x| *x <= self.x.1 + step * 1e-6)
                    .map(|x| (x, format!("{}/s", number(x))))
                    .collect()
            }
            XAxis::Percentile => ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
                .iter()
                .enumerate()
                .map(|(i, l)| (i as f64, l.to_string()))
                .filter(|(x, _)| *x <= self.x.1 + 1e-9)
                .collect(),
        };
        let yb = self.height - BOTTOM;
        for (x, label) in ticks {
            let px = self.px(x);
            let _ = write!(
                s,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{yb:.1}" stroke="#f0f0f0"/><text x="{px:.1}" y="{ty:.1}" text-anchor="middle" class="tick">{}</text>"##,
                esc(&label),
                ty = yb + 16.0,
            );
        }
    }
}

/// A step of 1, 2 or 5 times a power of ten that cuts `max` into four to ten parts.
pub fn nice_step(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let raw = max / 5.0;
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    let m = if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    };
    m * p
}

/// A step for a time axis of `span` seconds: whole seconds, minutes or hours.
fn time_step(span: f64) -> f64 {
    const STEPS: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 10.0)
        .unwrap_or_else(|| (span / 10.0 / 3600.0).ceil() * 3600.0)
}

/// Seconds as `45s`, `2m`, `1m30s`, `1h`, `1h5m`.
fn clock(t: f64) -> String {
    let t = t.round() as u64;
    match (t / 3600, (t % 3600) / 60, t % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// A tick label: no trailing zeros, thousands as `k`.
fn number(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{}k", number(v / 1000.0))
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Text made safe for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_and_labels() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(1000.0), 200.0);
        assert_eq!(nice_step(0.3), 0.05);
        assert_eq!(nice_step(f64::NAN), 1.0);
        assert_eq!(clock(90.0), "1m30s");
        assert_eq!(clock(3900.0), "1h5m");
        assert_eq!(number(0.05), "0.05");
        assert_eq!(number(20_000.0), "20k");
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn extreme_values_draw_a_bounded_axis() {
        for y_max in [1.7e308, f64::INFINITY, 5e-323, -1.0, f64::NAN, 0.0] {
            for x in [(0.0, 1e300), (0.0, 5e-324), (5.0, 5.0)] {
                let mut c = Chart::new(200.0, x, y_max, XAxis::Seconds, "");
                c.line(
                    "l",
                    Stroke {
                        color: "#000",
                        dashed: false,
                        width: 1.0,
                    },
                    &[(x.0, Some(y_max)), (x.1, Some(5e-323))],
                );
                let svg = c.render("t");
                assert!(svg.len() < 20_000, "{y_max} {x:?}: {} bytes", svg.len());
                assert!(
                    !svg.contains("NaN") && !svg.contains("inf"),
                    "{y_max} {x:?}"
                );
            }
        }
    }

    #[test]
    fn lines_break_at_gaps_and_values_stay_in_the_plot() {
        let mut c = Chart::new(200.0, (0.0, 10.0), 5.0, XAxis::Seconds, "");
        c.line(
            "a<b",
            Stroke {
                color: "#000",
                dashed: false,
                width: 1.0,
            },
            &[
                (1.0, Some(1.0)),
                (2.0, None),
                (3.0, Some(2.0)),
                (4.0, Some(1e9)),
            ],
        );
        let svg = c.render("t");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "the lone point is a dot");
        assert!(svg.contains(r#"data-series="a&lt;b""#));
        // 1e9 is clamped to the top of the plot, not drawn off it.
        assert!(svg.contains(&format!("{:.1}", TOP)));
    }
}
