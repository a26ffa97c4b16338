//! The live view of a run for its front-ends (the control API and page, the capacity search,
//! the terminal view): each second the progress tick hands it the recorder's counts and the
//! interval's latency histograms, the same windows the time series is built from, so no
//! front-end reads the recorder itself and nothing here runs on the send path. It keeps the
//! last five minutes a point a second (asked and achieved rates, errors, p50 and p99) and the
//! last ten seconds' histograms whole; percentiles over those are computed when asked for.

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use order_server::contract::OrderType;
use serde::Serialize;

use crate::recorder::{Counts, Window};

/// Points kept for the charts: five minutes at one a second.
pub const HISTORY: usize = 300;
/// Seconds the "recent" figures cover.
pub const RECENT_SECONDS: usize = 10;

/// One second of one run, per type (food first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Second {
    /// Seconds from the start, at the end of the interval.
    pub t: f64,
    pub asked: [f64; 2],
    pub achieved: [f64; 2],
    pub errors: [f64; 2],
    pub p50_ms: [Option<f64>; 2],
    pub p99_ms: [Option<f64>; 2],
}

/// One type's figures over the last ten seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recent {
    /// Answers per second.
    pub achieved_rate: f64,
    pub error_rate: f64,
    /// Corrected latency (from the intended send time), ms.
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Service time (from the actual send), ms.
    pub service_p50_ms: Option<f64>,
    pub service_p90_ms: Option<f64>,
    pub service_p99_ms: Option<f64>,
    /// Schedule lag p99, ms.
    pub lag_p99_ms: Option<f64>,
}

/// What the ticks since a [`Monitor::mark`] gathered: the span of a capacity step.
#[derive(Debug, Clone)]
pub struct Span {
    /// Seconds the span covers (whole ticks).
    pub seconds: f64,
    /// Counts within the span, per type.
    pub counts: [Counts; 2],
    /// Latencies within the span, per type.
    pub windows: [Window; 2],
}

#[derive(Debug)]
struct Mark {
    t: f64,
    last_t: f64,
    counts: [Counts; 2],
    windows: [Window; 2],
}

#[derive(Debug)]
struct Tick {
    t: f64,
    counts: [Counts; 2],
    windows: [Window; 2],
}

/// See the module documentation.
#[derive(Debug)]
pub struct Monitor {
    history: VecDeque<Second>,
    recent: VecDeque<Tick>,
    in_flight: u64,
    /// Corrected latency since the start, per type: what thresholds so far are judged on.
    so_far: [Histogram<u64>; 2],
    /// [`Monitor::recent`] as of the last tick: every reader between two ticks gets it
    /// without merging histograms again.
    cached: Option<[Recent; 2]>,
    mark: Option<Mark>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            history: VecDeque::new(),
            recent: VecDeque::new(),
            in_flight: 0,
            so_far: [Window::new().corrected, Window::new().corrected],
            cached: None,
            mark: None,
        }
    }
}

impl Monitor {
    /// One tick at `t` seconds: the fleet's asked rates now, and the recorder's counts and
    /// interval windows (which the monitor keeps).
    pub fn push(&mut self, t: f64, asked: [f64; 2], now: [(Counts, Window); 2], in_flight: u64) {
        let [(fc, fw), (cc, cw)] = now;
        let tick = Tick {
            t,
            counts: [fc, cc],
            windows: [fw, cw],
        };
        for (all, w) in self.so_far.iter_mut().zip(&tick.windows) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = all.add(&w.corrected);
        }
        let (dt, prev) = match self.recent.back() {
            Some(p) => ((t - p.t).max(1e-3), p.counts),
            None => (t.max(1e-3), [Counts::default(); 2]),
        };
        let per_s = |f: fn(&Counts) -> u64| {
            OrderType::ALL
                .map(|o| f(&tick.counts[o.index()]).saturating_sub(f(&prev[o.index()])) as f64 / dt)
        };
        let second = Second {
            t,
            asked,
            achieved: per_s(Counts::completed),
            errors: per_s(|c| c.completed() - c.ok()),
            p50_ms: tick.windows.each_ref().map(|w| ms(&w.corrected, 0.5)),
            p99_ms: tick.windows.each_ref().map(|w| ms(&w.corrected, 0.99)),
        };
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(second);
        // One more than the seconds covered: the oldest is the baseline of the counts.
        if self.recent.len() > RECENT_SECONDS {
            self.recent.pop_front();
        }
        if let Some(m) = &mut self.mark {
            for (w, t) in m.windows.iter_mut().zip(&tick.windows) {
                w.add(t);
            }
            m.last_t = t;
        }
        self.recent.push_back(tick);
        self.in_flight = in_flight;
        self.cached = None;
    }

    /// The points of the last five minutes, oldest first.
    pub fn history(&self) -> Vec<Second> {
        self.history.iter().cloned().collect()
    }

    /// Requests in flight at the last tick.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Starts a span at the last tick: what later ticks bring is gathered for
    /// [`Monitor::since_mark`].
    pub fn mark(&mut self) {
        let t = self.recent.back().map_or(0.0, |r| r.t);
        self.mark = Some(Mark {
            t,
            last_t: t,
            counts: self.counts(),
            windows: [Window::new(), Window::new()],
        });
    }

    /// The span since the last [`Monitor::mark`], if there is one.
    pub fn since_mark(&self) -> Option<Span> {
        let m = self.mark.as_ref()?;
        let now = self.counts();
        let counts = [0, 1].map(|i| now[i].since(&m.counts[i]));
        Some(Span {
            seconds: m.last_t - m.t,
            counts,
            windows: m.windows.clone(),
        })
    }

    /// Corrected latency since the start, per type.
    pub fn so_far(&self) -> &[Histogram<u64>; 2] {
        &self.so_far
    }

    /// The counts at the last tick.
    pub fn counts(&self) -> [Counts; 2] {
        self.recent
            .back()
            .map_or([Counts::default(); 2], |t| t.counts)
    }

    /// Each type's figures over the last ten seconds (or since the start), merged once a
    /// tick.
    pub fn recent(&mut self) -> [Recent; 2] {
        if let Some(c) = &self.cached {
            return c.clone();
        }
        let r = self.merged();
        self.cached = Some(r.clone());
        r
    }

    fn merged(&self) -> [Recent; 2] {
        let Some(last) = self.recent.back() else {
            return Default::default();
        };
        // The oldest tick is the baseline while the ring is full; before that, the start.
        let full = self.recent.len() > RECENT_SECONDS;
        let (t0, base) = match self.recent.front() {
            Some(f) if full => (f.t, f.counts),
            _ => (0.0, [Counts::default(); 2]),
        };
        let dt = (last.t - t0).max(1e-3);
        OrderType::ALL.map(|o| {
            let i = o.index();
            let mut w = Window::new();
            for tick in self.recent.iter().skip(usize::from(full)) {
                w.add(&tick.windows[i]);
            }
            let (c, b) = (&last.counts[i], &base[i]);
            let errors = (c.completed() - c.ok()).saturating_sub(b.completed() - b.ok());
            Recent {
                achieved_rate: c.completed().saturating_sub(b.completed()) as f64 / dt,
                error_rate: errors as f64 / dt,
                p50_ms: ms(&w.corrected, 0.5),
                p90_ms: ms(&w.corrected, 0.9),
                p99_ms: ms(&w.corrected, 0.99),
                service_p50_ms: ms(&w.service, 0.5),
                service_p90_ms: ms(&w.service, 0.9),
                service_p99_ms: ms(&w.service, 0.99),
                lag_p99_ms: ms(&w.lag, 0.99),
            }
        })
    }
}

/// The quantile of a histogram of microseconds, in milliseconds; `None` when it is empty.
fn ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(done: u64, latency_us: u64) -> [(Counts, Window); 2] {
        let mut w = Window::new();
        w.corrected.record(latency_us).expect("in range");
        let mut c = Counts::default();
        c.outcomes[0] = done;
        [(c, w), (Counts::default(), Window::new())]
    }

    #[test]
    fn recent_covers_the_last_ten_seconds_and_history_five_minutes() {
        let mut m = Monitor::default();
        assert_eq!(m.recent(), [Recent::default(), Recent::default()]);
        for s in 1..=400u64 {
            // 100/s for the first 390 s, then 200/s; latency 1 ms, then 5 ms.
            let done = if s <= 390 {
                100 * s
            } else {
                39_000 + 200 * (s - 390)
            };
            let lat = if s <= 390 { 1_000 } else { 5_000 };
            m.push(s as f64, [100.0, 0.0], tick(done, lat), 3);
        }
        let h = m.history();
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h[0].t, 101.0);
        assert_eq!(h[HISTORY - 1].achieved[0], 200.0);
        let [food, clothing] = m.recent();
        assert!((food.achieved_rate - 200.0).abs() < 1e-9, "{food:?}");
        assert!(
            (4.9..=5.1).contains(&food.p99_ms.expect("p99")),
            "only the last ten seconds: {food:?}"
        );
        assert_eq!(clothing.p99_ms, None);
        assert_eq!(m.in_flight(), 3);
    }
}
