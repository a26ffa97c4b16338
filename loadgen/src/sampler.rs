//! Builds the run's time series during the run, off the hot path: each tick (a second) hands
//! it the recorder's running counts and the interval's latency histograms; a point is the
//! difference of the counts since the last one (so the points add up to the report's totals
//! exactly) and the percentiles of the histograms gathered since. The run's end closes a last
//! point with what the drain and the unsent requests added.

use hdrhistogram::Histogram;
use order_server::contract::OrderType;

use crate::recorder::{Counts, Window};
use crate::schedule::Plan;
use crate::series::{Point, Series, MAX_POINTS};

/// The narrowest a point is (seconds), so that its counts make a finite rate.
const MIN_WIDTH: f64 = 1e-3;

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
    //! The sampler's points, and the series' own rules (merging, alignment, checks) on series
    //! the sampler built.
    use super::*;
    use crate::outcome::OutcomeClass;
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
