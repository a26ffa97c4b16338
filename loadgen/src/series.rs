//! The run's time series as the report carries it: per interval and order type, the requests
//! the plan asked for, those scheduled, sent, late, skipped and completed by outcome class, and
//! p50/p99 of corrected latency and service time with p99 of schedule lag, column by column.
//! This module owns what a point means when points combine: neighbours merged in pairs past
//! [`MAX_POINTS`] (so memory stays bounded), a tail sliver joined to the point before, shards'
//! series laid on one clock, and the checks a series read back from a file must pass.
//! [`crate::sampler`] builds it during the run.

use std::collections::BTreeMap;

use order_server::contract::OrderType;
use serde::{Deserialize, Serialize};

use crate::hdr;
use crate::outcome::OutcomeClass;
use crate::recorder::Counts;

/// More requests a second than any plan asks for at its peak: rates are at most a million a
/// second, a shape at most doubles them and a flash sale multiplies by 100 at most.
const MAX_ASKED_RATE: f64 = 1e9;

/// At most this many points before they merge in pairs: a run keeps one a second for over an
/// hour (68 minutes), one every two seconds to 2 h 16 min, and so on; about 1.4 MB at most.
pub const MAX_POINTS: usize = 4096;

/// The series of one run (or of merged shards), column by column.
///
/// A point that stands for several intervals (after pairs merge, or shards that overlap in
/// `loadgen merge`) sums their counts and carries the largest of their percentiles: an upper
/// bound, since percentiles of parts do not combine into the percentile of the whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    /// Seconds a point covers. The last may cover less (the run ended within it) or more (a
    /// sliver after the last tick joins it; in a merge, it reaches the last shard's end);
    /// points past the schedule's end hold the drain's answers.
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
pub(crate) struct Point {
    pub(crate) asked: f64,
    pub(crate) counts: Counts,
    /// Corrected p50 and p99, service p50 and p99, lag p99, in milliseconds.
    pub(crate) percentiles: [Option<f64>; 5],
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

    /// Every outcome class named, and nothing else.
    fn has_every_class(&self) -> bool {
        self.outcomes.len() == OutcomeClass::ALL.len()
            && OutcomeClass::ALL
                .iter()
                .all(|c| self.outcomes.contains_key(c.as_str()))
    }

    /// Every column as long as `asked`.
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
            && self.outcomes.values().all(|v| v.len() == n)
    }

    /// The columns' totals, `None` if they overflow.
    pub fn sums(&self) -> Option<Counts> {
        let sum = |c: &[u64]| c.iter().try_fold(0u64, |a, &b| a.checked_add(b));
        let mut outcomes = [0; 6];
        for class in OutcomeClass::ALL {
            outcomes[class.index()] = sum(self.outcomes.get(class.as_str())?)?;
        }
        Some(Counts {
            scheduled: sum(&self.scheduled)?,
            sent: sum(&self.sent)?,
            late: sum(&self.late)?,
            skipped: sum(&self.skipped)?,
            outcomes,
        })
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

    /// Seconds each point covers: from the previous point's end (the run's start for the
    /// first) to its own.
    pub fn widths(&self) -> impl Iterator<Item = f64> + '_ {
        self.t
            .iter()
            .scan(0.0, |begin, &t| Some(t - std::mem::replace(begin, t)))
    }

    pub(crate) fn push(&mut self, t: f64, points: &[Point; 2]) {
        self.t.push(t);
        for o in OrderType::ALL {
            self.of_mut(o).push(&points[o.index()]);
        }
    }

    /// Points that end after `end` ask for what `plan` asked up to `end` only (the ones
    /// wholly after it, for nothing).
    pub(crate) fn ask_nothing_after(&mut self, plan: &crate::schedule::Plan, end: f64) {
        for i in (0..self.len()).rev() {
            if self.t[i] <= end {
                break;
            }
            let begin = if i == 0 { 0.0 } else { self.t[i - 1] };
            for o in OrderType::ALL {
                let asked = plan.asked_between(o, begin.min(end), end);
                self.of_mut(o).asked[i] = asked;
            }
        }
    }

    /// The last two points as one, ending where the last ended.
    pub(crate) fn merge_tail(&mut self) {
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
    pub(crate) fn halve(&mut self) {
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

    /// Why this series (read from a report) cannot be used, if it cannot: too many points,
    /// columns of unequal length or outcome classes other than the six, times that are not
    /// finite, increasing and within `max_seconds`, percentiles beyond the histograms' range,
    /// more asked for than any plan's peak, or counts that do not add up to `totals` (the
    /// report's own, per order type).
    pub fn invalid(&self, max_seconds: f64, totals: &[Counts; 2]) -> Option<String> {
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
        if !(self.food.has_every_class() && self.clothing.has_every_class()) {
            return Some("series outcomes must name the six classes, each once".into());
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
        // The recorder clamps at HIGHEST; a quantile reads its bucket's top, a hair above.
        let max_ms = hdr::HIGHEST as f64 / 1000.0 * 1.01;
        let pct_ok = |v: &Option<f64>| v.is_none_or(|x| (0.0..=max_ms).contains(&x));
        for (o, s) in OrderType::ALL.iter().zip([&self.food, &self.clothing]) {
            let mut pct = [
                &s.corrected_p50_ms,
                &s.corrected_p99_ms,
                &s.service_p50_ms,
                &s.service_p99_ms,
                &s.lag_p99_ms,
            ]
            .into_iter()
            .flatten();
            // What the plan's peak asks for over the point's width (plus float slack).
            let asked_ok = s
                .asked
                .iter()
                .zip(self.widths())
                .all(|(&a, w)| (0.0..=MAX_ASKED_RATE * w + 1.0).contains(&a));
            if !asked_ok || !pct.all(pct_ok) {
                return Some(format!("series values of {o} out of range"));
            }
            if s.sums().as_ref() != Some(&totals[o.index()]) {
                return Some(format!(
                    "the {o} series does not add up to the report's {o} counts"
                ));
            }
        }
        None
    }

    /// Shards' series on one clock: each given with the seconds its run started after the
    /// earliest. A point falls into the interval (of the coarsest shard's width, counted from
    /// the earliest start, doubled until there are at most [`MAX_POINTS`]) that holds its
    /// middle, so one shard's points map one to one while its ticks are on time; empty
    /// intervals between shards stay, with zero counts. A point's `t` is its interval's end,
    /// the last one's the end of the last shard.
    /// `None` when no shard has a point.
    pub fn aligned(shards: &[(f64, &Series)]) -> Option<Series> {
        let mut interval = shards
            .iter()
            .map(|(_, s)| s.interval_seconds)
            .fold(0.0, f64::max);
        let end = shards
            .iter()
            .filter_map(|(off, s)| s.t.last().map(|t| off + t))
            .fold(0.0, f64::max);
        if interval <= 0.0 || shards.iter().all(|(_, s)| s.is_empty()) {
            return None;
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
        // The last interval ends with the last shard.
        let last = points.len() - 1;
        for (k, p) in points.iter().enumerate() {
            let t = if k == last {
                end
            } else {
                (k + 1) as f64 * interval
            };
            out.push(t.min(end), p);
        }
        Some(out)
    }
}
