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

    /// The plan changed live: what is asked from now on comes from `plan`, whose past is the
    /// same as before.
    pub fn replan(&mut self, plan: Plan) {
        self.plan = plan;
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

    /// The series, with a last point from the last tick to `t` (the end of the run, drain
    /// included: the requests it never sent and the answers it waited for are in `now`), at
    /// least a millisecond wide so that its counts make a finite rate. Past `schedule_end`
    /// (where the dispatch stopped) the plan asks for nothing: ticks during the drain asked
    /// as if it went on.
    pub fn finish(mut self, t: f64, schedule_end: f64, now: &[(Counts, Window); 2]) -> Series {
        for (p, (_, w)) in self.pending.iter_mut().zip(now) {
            p.add(w);
        }
        let moved = now.iter().zip(&self.last).any(|((c, _), l)| c != l);
        if moved || t > self.last_t || self.series.is_empty() {
            self.close(t.max(self.last_t + MIN_WIDTH), now);
            // A sliver after the last tick joins the point before it, which would otherwise
            // show its few requests as a rate over a millisecond.
            let n = self.series.len();
            if n >= 2 && t - self.series.t[n - 2] < self.series.interval_seconds / 4.0 {
                self.series.merge_tail();
            }
        }
        self.series.ask_nothing_after(&self.plan, schedule_end);
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
        let series = s.finish(5.6, 5.6, &end);
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
        assert_eq!(series.invalid(1e6, &[end[0].0, end[1].0]), None);
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
        let series = s.finish(2.05, 2.05, &at(3, &w));
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
        let end = ticks as f64 + 0.5;
        let series = s.finish(end, end, &at(ticks + 1, &w));
        assert!(series.len() <= MAX_POINTS, "{}", series.len());
        assert_eq!(series.interval_seconds, 4.0);
        assert_eq!(sum(&series.food.sent), 10 * (ticks + 1));
        assert_eq!(sum(&series.food.outcomes["2xx"]), 8 * (ticks + 1));
        assert!((sum_f(&series.food.asked) - 10.0 * (ticks as f64 + 0.5)).abs() < 1e-6);
        assert!(series.t.windows(2).all(|p| p[0] < p[1]));
        let last = at(ticks + 1, &w);
        assert_eq!(series.invalid(1e6, &[last[0].0, last[1].0]), None);
    }

    #[test]
    fn shards_align_on_one_clock() {
        let one = |ticks: u64| {
            let mut s = Sampler::new(plan(10.0, 0.0), 1.0);
            let w = [Window::new(), Window::new()];
            for k in 1..=ticks {
                s.tick(k as f64, &at(k, &w));
            }
            s.finish(ticks as f64, ticks as f64, &at(ticks, &w))
        };
        let (a, b) = (one(10), one(10));
        // b started 2.5 s after a.
        let merged = Series::aligned(&[(0.0, &a), (2.5, &b)]).expect("points");
        assert_eq!(merged.interval_seconds, 1.0);
        assert_eq!(merged.len(), 13);
        assert_eq!(sum(&merged.food.sent), 200);
        assert_eq!(merged.food.sent[0], 10, "only a in the first second");
        assert_eq!(merged.food.sent[3], 20, "both from 3 s");
        assert_eq!(*merged.t.last().expect("points"), 12.5);
        let mut both = at(10, &[Window::new(), Window::new()]).map(|(c, _)| c);
        both[0] = Counts {
            scheduled: 200,
            sent: 200,
            late: 20,
            skipped: 0,
            outcomes: both[0].outcomes.map(|n| 2 * n),
        };
        assert_eq!(merged.invalid(1e6, &both), None);
        assert_eq!(Series::aligned(&[]), None);
        assert_eq!(Series::aligned(&[(0.0, &Series::default())]), None);
    }

    #[test]
    fn the_drain_asks_for_nothing() {
        // The schedule stopped at 3 s; ticks went on through a 2-second drain.
        let mut s = Sampler::new(plan(10.0, 0.0), 1.0);
        let w = [Window::new(), Window::new()];
        for k in 1..=5u64 {
            s.tick(k as f64, &at(k.min(3), &w));
        }
        let series = s.finish(5.0, 2.5, &at(3, &w));
        let asked: Vec<f64> = series.food.asked.iter().map(|a| a.round()).collect();
        assert_eq!(asked, [10.0, 10.0, 5.0, 0.0, 0.0]);
    }

    #[test]
    fn a_damaged_series_is_named() {
        let mut s = Sampler::new(plan(10.0, 0.0), 1.0);
        let w = [Window::new(), Window::new()];
        s.tick(1.0, &at(1, &w));
        let good = s.finish(1.5, 1.5, &at(2, &w));
        let totals = at(2, &w).map(|(c, _)| c);
        assert_eq!(good.invalid(1e6, &totals), None);
        let damaged = |change: &dyn Fn(&mut Series), says: &str| {
            let mut bad = good.clone();
            change(&mut bad);
            let why = bad.invalid(1e6, &totals);
            assert!(
                why.as_deref().is_some_and(|w| w.contains(says)),
                "{says}: {why:?}"
            );
        };
        damaged(&|s| _ = s.food.sent.pop(), "lengths");
        damaged(&|s| s.t[1] = 0.5, "order");
        damaged(&|s| s.food.asked[0] = f64::NAN, "out of range");
        damaged(&|s| s.food.asked[0] = 1.7e308, "out of range");
        damaged(
            &|s| s.food.corrected_p99_ms[0] = Some(1.7e308),
            "out of range",
        );
        damaged(&|s| s.food.corrected_p99_ms[0] = Some(-1.0), "out of range");
        damaged(&|s| s.interval_seconds = 0.0, "interval_seconds");
        damaged(&|s| _ = s.clothing.outcomes.remove("2xx"), "six classes");
        damaged(
            &|s| _ = s.clothing.outcomes.insert("bogus".into(), vec![0, 0]),
            "six classes",
        );
        damaged(&|s| s.food.sent[0] += 1, "does not add up");
        damaged(&|s| s.food.sent[0] = u64::MAX, "does not add up");
    }
}
