//! The run's time series: per interval and order type, the requests the plan asked for, those
//! scheduled, sent, late, skipped and completed by outcome class, and p50/p99 of corrected
//! latency and service time with p99 of schedule lag. A [`Sampler`] builds it off the hot path,
//! once a tick, from the recorder's counts (differences of the running totals, so the points
//! add up to the report's totals exactly) and its interval histograms. Memory stays bounded:
//! when [`MAX_POINTS`] points are reached, neighbours merge in pairs and the interval doubles.
//! Shards' series are aligned here too, by their wall-clock start.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use order_server::contract::OrderType;
use serde::{Deserialize, Serialize};

use crate::outcome::OutcomeClass;
use crate::recorder::{Counts, Window};
use crate::schedule::Plan;

/// At most this many points before they merge in pairs: a run keeps one a second for over an
/// hour (68 minutes), one every two seconds to 2 h 16 min, and so on; about 1.4 MB at most.
pub const MAX_POINTS: usize = 4096;

/// The narrowest a point is (seconds).
const MIN_WIDTH: f64 = 1e-3;

/// The series of one run (or of merged shards), column by column.
///
/// A point that stands for several intervals (after pairs merge, or shards that overlap in
/// `loadgen merge`) sums their counts and carries the largest of their percentiles: an upper
/// bound, since percentiles of parts do not combine into the percentile of the whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    /// Seconds a point covers; the last point may cover less (the run ended within it).
    pub interval_seconds: f64,
    /// Seconds from the start of the run to the end of each point's interval.
    pub t: Vec<f64>,
    pub food: TypeSeries,
    pub clothing: TypeSeries,
}

/// One order type's columns, one entry per point. A percentile is `null` for an interval
/// without a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSeries {
    /// Requests the plan asked for in the interval: its rate integrated over it.
    pub asked: Vec<f64>,
    pub scheduled: Vec<u64>,
    pub sent: Vec<u64>,
    pub late: Vec<u64>,
    pub skipped: Vec<u64>,
    /// Completed requests by class: 2xx, 4xx, 5xx, timeout, connect_error, other.
    pub outcomes: BTreeMap<String, Vec<u64>>,
    pub corrected_p50_ms: Vec<Option<f64>>,
    pub corrected_p99_ms: Vec<Option<f64>>,
    pub service_p50_ms: Vec<Option<f64>>,
    pub service_p99_ms: Vec<Option<f64>>,
    pub lag_p99_ms: Vec<Option<f64>>,
}

/// One point of one type, before it joins the columns.
#[derive(Debug, Clone, Default, PartialEq)]
struct Point {
    asked: f64,
    counts: Counts,
    percentiles: [Option<f64>; 5],
}

impl Point {
    /// Counts summed, percentiles the larger.
    fn absorb(&mut self, other: &Point) {
        self.asked += other.asked;
        let (a, b) = (&mut self.counts, &other.counts);
        a.scheduled += b.scheduled;
        a.sent += b.sent;
        a.late += b.late;
        a.skipped += b.skipped;
        for (x, y) in a.outcomes.iter_mut().zip(b.outcomes) {
            *x += y;
        }
        for (x, y) in self.percentiles.iter_mut().zip(other.percentiles) {
            *x = match (*x, y) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
}

impl TypeSeries {
    pub fn len(&self) -> usize {
        self.asked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.asked.is_empty()
    }

    fn push(&mut self, p: &Point) {
        self.asked.push(p.asked);
        self.scheduled.push(p.counts.scheduled);
        self.sent.push(p.counts.sent);
        self.late.push(p.counts.late);
        self.skipped.push(p.counts.skipped);
        for class in OutcomeClass::ALL {
            self.outcomes
                .entry(class.as_str().to_string())
                .or_default()
                .push(p.counts.outcomes[class.index()]);
        }
        for (column, v) in self.percentile_columns_mut().into_iter().zip(p.percentiles) {
            column.push(v);
        }
    }

    fn pop(&mut self) {
        self.asked.pop();
        self.scheduled.pop();
        self.sent.pop();
        self.late.pop();
        self.skipped.pop();
        for column in self.outcomes.values_mut() {
            column.pop();
        }
        for column in self.percentile_columns_mut() {
            column.pop();
        }
    }

    fn point(&self, i: usize) -> Point {
        let mut outcomes = [0; 6];
        for class in OutcomeClass::ALL {
            outcomes[class.index()] = self
                .outcomes
                .get(class.as_str())
                .and_then(|c| c.get(i))
                .copied()
                .unwrap_or(0);
        }
        let pct = |c: &Vec<Option<f64>>| c.get(i).copied().flatten();
        Point {
            asked: self.asked[i],
            counts: Counts {
                scheduled: self.scheduled[i],
                sent: self.sent[i],
                late: self.late[i],
                skipped: self.skipped[i],
                outcomes,
            },
            percentiles: [
                pct(&self.corrected_p50_ms),
                pct(&self.corrected_p99_ms),
                pct(&self.service_p50_ms),
                pct(&self.service_p99_ms),
                pct(&self.lag_p99_ms),
            ],
        }
    }

    fn percentile_columns_mut(&mut self) -> [&mut Vec<Option<f64>>; 5] {
        [
            &mut self.corrected_p50_ms,
            &mut self.corrected_p99_ms,
            &mut self.service_p50_ms,
            &mut self.service_p99_ms,
            &mut self.lag_p99_ms,
        ]
    }

    /// Every column as long as `asked`, every outcome class named once.
    fn is_square(&self) -> bool {
        let n = self.len();
        let pct = [
            &self.corrected_p50_ms,
            &self.corrected_p99_ms,
            &self.service_p50_ms,
            &self.service_p99_ms,
            &self.lag_p99_ms,
        ];
        [&self.scheduled, &self.sent, &self.late, &self.skipped]
            .iter()
            .all(|c| c.len() == n)
            && pct.iter().all(|c| c.len() == n)
            && self.outcomes.len() == OutcomeClass::ALL.len()
            && OutcomeClass::ALL
                .iter()
                .all(|c| self.outcomes.get(c.as_str()).is_some_and(|v| v.len() == n))
    }
}

impl Series {
    pub fn of(&self, t: OrderType) -> &TypeSeries {
        match t {
            OrderType::Food => &self.food,
            OrderType::Clothing => &self.clothing,
        }
    }

    fn of_mut(&mut self, t: OrderType) -> &mut TypeSeries {
        match t {
            OrderType::Food => &mut self.food,
            OrderType::Clothing => &mut self.clothing,
        }
    }

    pub fn len(&self) -> usize {
        self.t.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    fn push(&mut self, t: f64, points: &[Point; 2]) {
        self.t.push(t);
        for o in OrderType::ALL {
            self.of_mut(o).push(&points[o.index()]);
        }
    }

    /// The last two points as one, ending where the last ended.
    fn merge_tail(&mut self) {
        let n = self.len();
        let merged = OrderType::ALL.map(|o| {
            let mut p = self.of(o).point(n - 2);
            p.absorb(&self.of(o).point(n - 1));
            p
        });
        let end = self.t[n - 1];
        for _ in 0..2 {
            self.t.pop();
            for o in OrderType::ALL {
                self.of_mut(o).pop();
            }
        }
        self.push(end, &merged);
    }

    /// Neighbours merged in pairs (a last odd point stays alone); the interval doubles.
    fn halve(&mut self) {
        let old = std::mem::take(self);
        self.interval_seconds = old.interval_seconds * 2.0;
        for pair in (0..old.len()).collect::<Vec<_>>().chunks(2) {
            let end = old.t[pair[pair.len() - 1]];
            let merged = OrderType::ALL.map(|o| {
                let column = old.of(o);
                let mut p = column.point(pair[0]);
                for &i in &pair[1..] {
                    p.absorb(&column.point(i));
                }
                p
            });
            self.push(end, &merged);
        }
    }

    /// Why this series (read from a report) cannot be used, if it cannot: columns of unequal
    /// length, times that are not finite, increasing and within `max_seconds`, too many points.
    pub fn invalid(&self, max_seconds: f64) -> Option<String> {
        let i = self.interval_seconds;
        if !(i.is_finite() && i > 0.0 && i <= max_seconds) {
            return Some(format!("series interval_seconds {i} is out of range"));
        }
        if self.len() > 2 * MAX_POINTS {
            return Some(format!(
                "series of {} points: more than any run",
                self.len()
            ));
        }
        let square = |s: &TypeSeries| s.len() == self.len() && s.is_square();
        if !(square(&self.food) && square(&self.clothing)) {
            return Some("series columns of different lengths".into());
        }
        let mut last = 0.0;
        for &t in &self.t {
            if !(t.is_finite() && t >= last && t <= max_seconds) {
                return Some(format!("series time {t} is out of order or range"));
            }
            last = t;
        }
        let pct_ok = |v: &Option<f64>| v.is_none_or(|x| x.is_finite() && x >= 0.0);
        let asked_ok = |v: &f64| v.is_finite() && *v >= 0.0;
        for s in [&self.food, &self.clothing] {
            let mut pct = [
                &s.corrected_p50_ms,
                &s.corrected_p99_ms,
                &s.service_p50_ms,
                &s.service_p99_ms,
                &s.lag_p99_ms,
            ]
            .into_iter()
            .flatten();
            if !s.asked.iter().all(asked_ok) || !pct.all(pct_ok) {
                return Some("series values out of range".into());
            }
        }
        None
    }

    /// Shards' series on one clock: each given with the seconds its run started after the
    /// earliest. A point falls into the interval (of the coarsest shard's width, counted from
    /// the earliest start, doubled until there are at most [`MAX_POINTS`]) that holds its
    /// middle, so one shard's points map one to one; empty intervals between shards stay, with
    /// zero counts.
    pub fn aligned(shards: &[(f64, &Series)]) -> Series {
        let mut interval = shards
            .iter()
            .map(|(_, s)| s.interval_seconds)
            .fold(0.0, f64::max);
        let end = shards
            .iter()
            .filter_map(|(off, s)| s.t.last().map(|t| off + t))
            .fold(0.0, f64::max);
        if interval <= 0.0 || shards.iter().all(|(_, s)| s.is_empty()) {
            return Series::default();
        }
        while (end / interval).ceil() > MAX_POINTS as f64 {
            interval *= 2.0;
        }
        let slot_of = |middle: f64| ((middle / interval).floor().max(0.0) as usize).min(MAX_POINTS);
        let mut points: Vec<[Point; 2]> = Vec::new();
        for (off, s) in shards {
            let mut begin = 0.0;
            for (i, &t) in s.t.iter().enumerate() {
                let k = slot_of(off + (begin + t) / 2.0);
                begin = t;
                if points.len() <= k {
                    points.resize(k + 1, [Point::default(), Point::default()]);
                }
                for o in OrderType::ALL {
                    points[k][o.index()].absorb(&s.of(o).point(i));
                }
            }
        }
        let mut out = Series {
            interval_seconds: interval,
            ..Series::default()
        };
        for (k, p) in points.iter().enumerate() {
            out.push(((k + 1) as f64 * interval).min(end), p);
        }
        out
    }
}

/// Builds the series tick by tick. Each tick hands it the recorder's counts and the interval's
/// histograms; a point is closed every `every` ticks (one, then two after the first merge...).
#[derive(Debug)]
pub struct Sampler {
    plan: Plan,
    series: Series,
    last: [Counts; 2],
    last_t: f64,
    pending: [Window; 2],
    ticks: u32,
    every: u32,
}

impl Sampler {
    /// `tick`: seconds between the calls to [`Sampler::tick`].
    pub fn new(plan: Plan, tick: f64) -> Self {
        Sampler {
            plan,
            series: Series {
                interval_seconds: tick,
                ..Series::default()
            },
            last: [Counts::default(); 2],
            last_t: 0.0,
            pending: [Window::new(), Window::new()],
            ticks: 0,
            every: 1,
        }
    }

    /// One tick, `t` seconds into the run.
    pub fn tick(&mut self, t: f64, now: &[(Counts, Window); 2]) {
        for (p, (_, w)) in self.pending.iter_mut().zip(now) {
            p.add(w);
        }
        self.ticks += 1;
        if self.ticks < self.every {
            return;
        }
        self.close(t, now);
        if self.series.len() >= MAX_POINTS {
            self.series.halve();
            self.every *= 2;
        }
    }

    /// The series, with a last point for the time since the last one (the run's end, drain
    /// and the requests it never sent included), at least a millisecond wide so that its
    /// counts make a finite rate.
    pub fn finish(mut self, t: f64, now: &[(Counts, Window); 2]) -> Series {
        for (p, (_, w)) in self.pending.iter_mut().zip(now) {
            p.add(w);
        }
        let moved = now.iter().zip(&self.last).any(|((c, _), l)| c != l);
        if moved || t > self.last_t || self.series.is_empty() {
            self.close(t.max(self.last_t + MIN_WIDTH), now);
            // A sliver after the last tick joins the point before it, which would otherwise
            // show its few requests as a rate over a millisecond.
            let width = self.series.interval_seconds * f64::from(self.every);
            if self.series.len() >= 2 && t - self.series.t[self.series.len() - 2] < width / 4.0 {
                self.series.merge_tail();
            }
        }
        self.series
    }

    fn close(&mut self, t: f64, now: &[(Counts, Window); 2]) {
        let points = OrderType::ALL.map(|o| {
            let (c, _) = &now[o.index()];
            let l = &self.last[o.index()];
            let w = &self.pending[o.index()];
            let d = |a: u64, b: u64| a.saturating_sub(b);
            let mut outcomes = [0; 6];
            for (i, x) in outcomes.iter_mut().enumerate() {
                *x = d(c.outcomes[i], l.outcomes[i]);
            }
            Point {
                asked: self.plan.asked_between(o, self.last_t, t),
                counts: Counts {
                    scheduled: d(c.scheduled, l.scheduled),
                    sent: d(c.sent, l.sent),
                    late: d(c.late, l.late),
                    skipped: d(c.skipped, l.skipped),
                    outcomes,
                },
                percentiles: [
                    ms(&w.corrected, 0.5),
                    ms(&w.corrected, 0.99),
                    ms(&w.service, 0.5),
                    ms(&w.service, 0.99),
                    ms(&w.lag, 0.99),
                ],
            }
        });
        self.series.push(t, &points);
        self.last = now.each_ref().map(|(c, _)| *c);
        self.last_t = t;
        self.ticks = 0;
        for w in &mut self.pending {
            w.corrected.reset();
            w.service.reset();
            w.lag.reset();
        }
    }
}

/// The quantile of a histogram of microseconds, in milliseconds; `None` when it is empty.
fn ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Profile, Shape};

    fn plan(food: f64, clothing: f64) -> Plan {
        Plan::single(Profile {
            shape: Shape::Constant,
            rates: [food, clothing],
            flash_sales: None,
        })
    }

    /// The recorder's view after `k` seconds of 10 food requests a second (2 of them 5xx),
    /// with `w` as the interval's windows.
    fn at(k: u64, w: &[Window; 2]) -> [(Counts, Window); 2] {
        let mut outcomes = [0; 6];
        outcomes[OutcomeClass::Success.index()] = 8 * k;
        outcomes[OutcomeClass::ServerError.index()] = 2 * k;
        let food = Counts {
            scheduled: 10 * k,
            sent: 10 * k,
            late: k,
            skipped: 0,
            outcomes,
        };
        [(food, w[0].clone()), (Counts::default(), w[1].clone())]
    }

    fn sum(c: &[u64]) -> u64 {
        c.iter().sum()
    }

    #[test]
    fn points_add_up_to_the_totals_and_carry_each_interval_percentiles() {
        let mut s = Sampler::new(plan(10.0, 0.0), 1.0);
        let mut w = [Window::new(), Window::new()];
        for k in 1..=5u64 {
            w[0].corrected.reset();
            // Interval k's requests took k ms.
            let _ = w[0].corrected.record_n(k * 1000, 10);
            s.tick(k as f64, &at(k, &w));
        }
        // The end 0.6 s after the last tick, with 4 requests unsent (skipped).
        let mut end = at(5, &[Window::new(), Window::new()]);
        end[0].0.skipped = 4;
        end[0].0.scheduled += 4;
        let series = s.finish(5.6, &end);
        assert_eq!(series.len(), 6);
        assert_eq!(series.t[5], 5.6);
        let f = &series.food;
        assert_eq!(sum(&f.sent), 50);
        assert_eq!(sum(&f.scheduled), 54);
        assert_eq!(sum(&f.skipped), 4);
        assert_eq!(sum(&f.late), 5);
        assert_eq!(sum(&f.outcomes["5xx"]), 10);
        assert_eq!(f.outcomes.len(), 6);
        let p99: Vec<_> = f
            .corrected_p99_ms
            .iter()
            .map(|v| v.map(f64::round))
            .collect();
        assert_eq!(
            p99,
            [Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0), None]
        );
        assert!((f.asked[5] - 6.0).abs() < 1e-9, "{:?}", f.asked);
        assert!((sum_f(&f.asked) - 56.0).abs() < 1e-9);
        assert!(series.clothing.corrected_p50_ms.iter().all(Option::is_none));
        assert_eq!(series.invalid(1e6), None);
    }

    fn sum_f(c: &[f64]) -> f64 {
        c.iter().sum()
    }

    #[test]
    fn a_sliver_after_the_last_tick_joins_the_point_before() {
        let mut s = Sampler::new(plan(10.0, 0.0), 1.0);
        let w = [Window::new(), Window::new()];
        s.tick(1.0, &at(1, &w));
        s.tick(2.0, &at(2, &w));
        let series = s.finish(2.05, &at(3, &w));
        assert_eq!(series.t, [1.0, 2.05]);
        assert_eq!(series.food.sent, [10, 20]);
    }

    #[test]
    fn past_max_points_neighbours_merge_and_nothing_is_lost() {
        let mut s = Sampler::new(plan(10.0, 0.0), 1.0);
        let w = [Window::new(), Window::new()];
        let ticks = 2 * MAX_POINTS as u64 + 3;
        for k in 1..=ticks {
            s.tick(k as f64, &at(k, &w));
        }
        let series = s.finish(ticks as f64 + 0.5, &at(ticks + 1, &w));
        assert!(series.len() <= MAX_POINTS, "{}", series.len());
        assert_eq!(series.interval_seconds, 4.0);
        assert_eq!(sum(&series.food.sent), 10 * (ticks + 1));
        assert_eq!(sum(&series.food.outcomes["2xx"]), 8 * (ticks + 1));
        assert!((sum_f(&series.food.asked) - 10.0 * (ticks as f64 + 0.5)).abs() < 1e-6);
        assert!(series.t.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(series.invalid(1e6), None);
    }

    #[test]
    fn shards_align_on_one_clock() {
        let one = |ticks: u64| {
            let mut s = Sampler::new(plan(10.0, 0.0), 1.0);
            let w = [Window::new(), Window::new()];
            for k in 1..=ticks {
                s.tick(k as f64, &at(k, &w));
            }
            s.finish(ticks as f64, &at(ticks, &w))
        };
        let (a, b) = (one(10), one(10));
        // b started 2.5 s after a.
        let merged = Series::aligned(&[(0.0, &a), (2.5, &b)]);
        assert_eq!(merged.interval_seconds, 1.0);
        assert_eq!(merged.len(), 13);
        assert_eq!(sum(&merged.food.sent), 200);
        assert_eq!(merged.food.sent[0], 10, "only a in the first second");
        assert_eq!(merged.food.sent[3], 20, "both from 3 s");
        assert_eq!(*merged.t.last().expect("points"), 12.5);
        assert_eq!(merged.invalid(1e6), None);
        assert_eq!(Series::aligned(&[]), Series::default());
    }

    #[test]
    fn a_damaged_series_is_named() {
        let mut s = Sampler::new(plan(10.0, 0.0), 1.0);
        let w = [Window::new(), Window::new()];
        s.tick(1.0, &at(1, &w));
        let good = s.finish(1.5, &at(2, &w));
        let mut short = good.clone();
        short.food.sent.pop();
        assert!(short.invalid(1e6).is_some_and(|e| e.contains("lengths")));
        let mut back = good.clone();
        back.t[1] = 0.5;
        assert!(back.invalid(1e6).is_some_and(|e| e.contains("order")));
        let mut nan = good.clone();
        nan.food.asked[0] = f64::NAN;
        assert!(nan.invalid(1e6).is_some());
        let mut zero = good;
        zero.interval_seconds = 0.0;
        assert!(zero.invalid(1e6).is_some());
    }
}
