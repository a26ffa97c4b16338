//! When is request n due? The pure rate model: traffic shapes (constant, ramp, steps, sine, a
//! compressed shop day with flash sales) give each order type a rate as a function of elapsed
//! time; a [`Plan`] strings shapes together in phases; [`Arrivals`] turns a plan into due times,
//! evenly spaced or Poisson, by inverting the cumulative rate (time rescaling). No clock and no
//! I/O: everything here is a function of elapsed seconds and a seed, so it is table-tested.

use std::f64::consts::TAU;

use order_server::contract::OrderType;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// How the rate changes within a phase; factors multiply the phase's base rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "shape", rename_all = "lowercase")]
pub enum Shape {
    /// The base rate throughout.
    Constant,
    /// From `from` x base to base over `over` seconds, then steady.
    Ramp { from: f64, over: f64 },
    /// `steps` equal steps up to the base rate, each `every` seconds long.
    Steps { steps: u32, every: f64 },
    /// base x (1 + amplitude x sin(2 pi t / period)).
    Sine { period: f64, amplitude: f64 },
    /// A shop's day compressed into `day_length` seconds, starting at `start_hour`; the base rate
    /// is each type's peak rate.
    Daily { day_length: f64, start_hour: f64 },
}

impl Shape {
    /// Rate factor at `t` seconds into the phase.
    pub fn factor(&self, t: f64, order_type: OrderType) -> f64 {
        match *self {
            Shape::Constant => 1.0,
            Shape::Ramp { from, over } => {
                if over <= 0.0 || t >= over {
                    1.0
                } else {
                    from + (1.0 - from) * (t / over)
                }
            }
            Shape::Steps { steps, every } => {
                let steps = f64::from(steps.max(1));
                let k = if every > 0.0 {
                    (t / every).floor() + 1.0
                } else {
                    steps
                };
                k.min(steps) / steps
            }
            Shape::Sine { period, amplitude } => {
                (1.0 + amplitude * (TAU * t / period).sin()).max(0.0)
            }
            Shape::Daily {
                day_length,
                start_hour,
            } => {
                let hour = (start_hour + 24.0 * t / day_length).rem_euclid(24.0);
                daily_profile(hour, order_type)
            }
        }
    }
}

/// A shop's day, as a fraction of each type's peak rate, by hour of day (0..24).
///
/// Food: breakfast bump at 08:00, lunch peak at 12:00, dinner at 18:30, quiet night.
/// Clothing: a daytime plateau and an evening peak at 20:30 (shopping after work).
pub fn daily_profile(hour: f64, order_type: OrderType) -> f64 {
    // Circular distance so the night wraps around midnight smoothly.
    let bump = |center: f64, width: f64, height: f64| {
        let mut d = (hour - center).abs();
        d = d.min(24.0 - d);
        height * (-0.5 * (d / width).powi(2)).exp()
    };
    match order_type {
        OrderType::Food => {
            (0.04 + bump(8.0, 1.0, 0.25) + bump(12.0, 1.0, 0.96) + bump(18.5, 1.3, 0.8)).min(1.0)
        }
        OrderType::Clothing => (0.03 + bump(15.0, 4.0, 0.35) + bump(20.5, 1.5, 0.75)).min(1.0),
    }
}

/// Random flash sales: in each slot of `every` seconds there is a sale with probability
/// one half, lasting `duration` seconds at a random offset, during which clothing runs at
/// `factor` x and food at a quarter of the extra. A pure function of time and seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlashSales {
    pub every: f64,
    pub duration: f64,
    pub factor: f64,
    pub seed: u64,
}

impl FlashSales {
    /// The sale window of slot `k`, if it has one.
    pub fn window(&self, k: u64) -> Option<(f64, f64)> {
        let mut rng = SmallRng::seed_from_u64(self.seed ^ k.wrapping_mul(0xA24B_AED4_963E_E407));
        if !rng.random_bool(0.5) {
            return None;
        }
        let room = (self.every - self.duration).max(0.0);
        let start = k as f64 * self.every + rng.random::<f64>() * room;
        Some((start, start + self.duration))
    }

    pub fn factor(&self, t: f64, order_type: OrderType) -> f64 {
        if self.every <= 0.0 || t < 0.0 {
            return 1.0;
        }
        let k = (t / self.every) as u64;
        match self.window(k) {
            Some((a, b)) if t >= a && t < b => match order_type {
                OrderType::Clothing => self.factor,
                OrderType::Food => 1.0 + (self.factor - 1.0) / 4.0,
            },
            _ => 1.0,
        }
    }
}

/// Rates and shape of one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    #[serde(flatten)]
    pub shape: Shape,
    /// Base rate per order type in requests/s, indexed by [`OrderType::index`].
    pub rates: [f64; 2],
    pub flash_sales: Option<FlashSales>,
}

impl Profile {
    /// Whether the rate is the same throughout (no shape, no flash sales).
    pub fn is_constant(&self) -> bool {
        self.shape == Shape::Constant && self.flash_sales.is_none()
    }

    pub fn rate(&self, t: f64, order_type: OrderType) -> f64 {
        let base = self.rates[order_type.index()];
        if base <= 0.0 {
            return 0.0;
        }
        let flash = self
            .flash_sales
            .as_ref()
            .map_or(1.0, |f| f.factor(t, order_type));
        base * self.shape.factor(t, order_type) * flash
    }
}

/// One stretch of a run; the last phase may be open-ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    /// Seconds; `None` only for the last phase: until the run stops.
    pub duration: Option<f64>,
    pub profile: Profile,
    /// Seconds into its profile at which the phase starts: a shape resumed after a live
    /// change goes on from where it was instead of starting over.
    #[serde(skip_serializing_if = "is_zero")]
    pub offset: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Phases back to back, with a rate split across `shards` replicas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub phases: Vec<Phase>,
    /// (index, count): this replica takes 1/count of every rate.
    pub shard: (u32, u32),
}

impl Plan {
    pub fn single(profile: Profile) -> Self {
        Plan {
            phases: vec![Phase {
                name: "main".into(),
                duration: None,
                offset: 0.0,
                profile,
            }],
            shard: (0, 1),
        }
    }

    /// The phase running at `t` and its start time; past the end of a closed plan, `None`.
    pub fn phase_at(&self, t: f64) -> Option<(usize, f64)> {
        let mut start = 0.0;
        for (i, p) in self.phases.iter().enumerate() {
            match p.duration {
                Some(d) if t >= start + d => start += d,
                _ => return Some((i, start)),
            }
        }
        None
    }

    /// Total length, if every phase has a duration.
    pub fn length(&self) -> Option<f64> {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// This replica's rate of `order_type` at `t` seconds into the run.
    pub fn rate(&self, t: f64, order_type: OrderType) -> f64 {
        match self.phase_at(t) {
            Some((i, start)) => {
                let phase = &self.phases[i];
                phase.profile.rate(t - start + phase.offset, order_type)
                    / f64::from(self.shard.1.max(1))
            }
            None => 0.0,
        }
    }

    /// Requests of `order_type` the plan asks for in its first `until` seconds: the rate's
    /// integral, what a run's target rate is, as opposed to the count its random schedule
    /// happened to draw.
    pub fn asked(&self, order_type: OrderType, until: f64) -> f64 {
        self.asked_between(order_type, 0.0, until)
    }

    /// Requests of `order_type` the plan asks for from `from` to `until` seconds. Exact for
    /// constant phases; a shaped phase is integrated by the midpoint rule in steps of 10 ms,
    /// or of a millionth of the span if that is longer, so a year-long span costs no more
    /// than a million evaluations per phase.
    pub fn asked_between(&self, order_type: OrderType, from: f64, until: f64) -> f64 {
        let shards = f64::from(self.shard.1.max(1));
        let mut start = 0.0;
        let mut total = 0.0;
        for phase in &self.phases {
            if start >= until {
                break;
            }
            let end = phase.duration.map_or(until, |d| (start + d).min(until));
            let lo = from.max(start);
            let span = end - lo;
            let p = &phase.profile;
            if span > 0.0 && p.is_constant() {
                total += p.rates[order_type.index()].max(0.0) * span;
            } else if span > 0.0 {
                let steps = (span / 0.01).ceil().clamp(1.0, 1e6) as u64;
                let dt = span / steps as f64;
                let offset = lo - start + phase.offset;
                total += (0..steps)
                    .map(|k| p.rate(offset + (k as f64 + 0.5) * dt, order_type) * dt)
                    .sum::<f64>();
            }
            start = end;
        }
        total / shards
    }
}

/// Spacing of arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalProcess {
    /// Evenly spaced at the current rate.
    Uniform,
    /// Independent arrivals (exponential gaps), like real customers.
    Poisson,
}

/// Whether a request due at `due` seconds falls inside a run of `end` seconds. The due times
/// are sums of many float steps, so one meant to land exactly on the end can come out a
/// hair before it (the 20,000th of 10,000/s for 2 s at 1.9999999999 s); that one belongs to
/// the next second, not to this run.
pub fn before_end(due: f64, end: f64) -> bool {
    due < end - 1e-9
}

/// When a dispatcher that wakes once per `tick` seconds sends a request due at `due`: the
/// first tick boundary from the start at or after it (`due` itself when `tick` is 0), but no
/// later than the `end` of the run, so a request due before the end is never lost to a
/// boundary after it, and never before `due`. A due time that float sums put a hair past the
/// boundary it was meant for goes then, not a whole tick later.
pub fn tick_after(due: f64, tick: f64, end: Option<f64>) -> f64 {
    if tick <= 0.0 {
        return due;
    }
    let boundary = (due / tick - 1e-6).ceil() * tick;
    end.map_or(boundary, |e| boundary.min(e)).max(due)
}

/// Integration step for the cumulative rate; shapes change slowly compared with it.
const SLICE: f64 = 0.005;
/// With a zero rate for this long, no further request of this type is due.
const MAX_SILENCE: f64 = 24.0 * 3600.0;

/// The due times of one order type under a plan.
#[derive(Debug, Clone)]
pub struct Arrivals {
    plan: Plan,
    order_type: OrderType,
    process: ArrivalProcess,
    rng: SmallRng,
    /// Time of the previous arrival and how far into the next unit of cumulative rate we are.
    t: f64,
    pending: f64,
    /// `t` and `pending` before the last [`Arrivals::next_due`], so a live change can take
    /// back a due time it makes wrong.
    before: (f64, f64),
    end: Option<f64>,
    /// The run's own end ([`Arrivals::until`]), kept for a new plan.
    horizon: Option<f64>,
}

impl Arrivals {
    pub fn new(plan: Plan, order_type: OrderType, process: ArrivalProcess, seed: u64) -> Self {
        let (shard, shards) = plan.shard;
        let seed = seed
            ^ (u64::from(shard) << 32)
            ^ (order_type.index() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = SmallRng::seed_from_u64(seed);
        // Uniform replicas interleave (replica i starts i/n of a gap late) so their sum is even.
        let first = match process {
            // A tiny positive start so a type whose rate is zero never gets a request at t = 0.
            ArrivalProcess::Uniform => (f64::from(shard) / f64::from(shards.max(1))).max(1e-9),
            ArrivalProcess::Poisson => exp1(&mut rng),
        };
        let end = plan.length();
        Arrivals {
            plan,
            order_type,
            process,
            rng,
            t: 0.0,
            pending: first,
            before: (0.0, first),
            end,
            horizon: None,
        }
    }

    /// Ends the arrivals at `horizon` seconds (the run's `--duration`) if that comes before the
    /// plan's end: nothing is computed past the end of the run.
    pub fn until(mut self, horizon: Option<f64>) -> Self {
        self.horizon = horizon;
        self.end = end_of(&self.plan, horizon);
        self
    }

    /// Goes on under `plan`, whose past is this plan's and which changes from some moment
    /// on: the integration simply continues from the last due time over the new plan, so
    /// the gap in progress is shared by the old rate (up to the change) and the new one (no
    /// burst, no pause), and arrivals the old plan put before the change, not yet drawn
    /// because the dispatch is behind, are still drawn. `rewind` takes back the due time
    /// the last [`Arrivals::next_due`] returned (it lies after the change, so the new plan
    /// decides it); without it, that due time stands.
    pub fn replan(&mut self, plan: Plan, rewind: bool) {
        if rewind {
            (self.t, self.pending) = self.before;
        }
        self.end = end_of(&plan, self.horizon);
        self.plan = plan;
    }

    /// Seconds since the start of the run at which the next request is due; `None` when the
    /// plan has ended or the rate stays at zero.
    pub fn next_due(&mut self) -> Option<f64> {
        let due = self.advance(self.pending)?;
        self.before = (self.t, self.pending);
        self.t = due;
        self.pending = match self.process {
            ArrivalProcess::Uniform => 1.0,
            ArrivalProcess::Poisson => exp1(&mut self.rng),
        };
        Some(due)
    }

    /// The time at which the integral of the rate from `self.t` reaches `need`.
    fn advance(&self, mut need: f64) -> Option<f64> {
        let mut t = self.t;
        if need <= 0.0 {
            return Some(t);
        }
        let mut silent = 0.0;
        loop {
            if self.end.is_some_and(|end| t >= end) {
                return None;
            }
            let mut slice_end = (t / SLICE).floor() * SLICE + SLICE;
            // Rounding can put t on (or just past) a slice edge: never take an empty step.
            if slice_end <= t + 1e-9 {
                slice_end += SLICE;
            }
            // A phase whose base rate for this type is zero is silent throughout: jump over
            // it instead of integrating a day of 5 ms slices, which would delay the start
            // and show as schedule lag on the first requests.
            if let Some((i, start)) = self.plan.phase_at(t) {
                let phase = &self.plan.phases[i];
                let phase_end = phase.duration.map(|d| start + d);
                if phase.profile.rates[self.order_type.index()] <= 0.0 {
                    let to = phase_end?;
                    silent += to - t;
                    if silent > MAX_SILENCE {
                        return None;
                    }
                    t = to;
                    continue;
                }
                // A constant rate needs no integration: the due time is one division away,
                // however small the rate (1e-7/s in 5 ms slices would be billions of steps).
                if phase.profile.is_constant() {
                    let r = self.plan.rate(t, self.order_type);
                    let due = t + need / r;
                    match phase_end {
                        Some(to) if due >= to => {
                            need -= r * (to - t);
                            t = to;
                            continue;
                        }
                        _ => {
                            return match self.end {
                                Some(end) if due >= end => None,
                                _ => Some(due),
                            };
                        }
                    }
                }
            }
            let dt = slice_end - t;
            let r = self.plan.rate(t + dt / 2.0, self.order_type);
            let area = r * dt;
            if area >= need {
                let due = t + need / r;
                return match self.end {
                    Some(end) if due >= end => None,
                    _ => Some(due),
                };
            }
            need -= area;
            silent = if r > 0.0 { 0.0 } else { silent + dt };
            if silent > MAX_SILENCE {
                return None;
            }
            t = slice_end;
        }
    }
}

/// Where arrivals under `plan` end: the plan's end or the run's, whichever comes first.
/// A year and a day: no due time lies past it, so an absurdly small rate draws none instead
/// of one at 1e300 s (which executors could not turn into an instant) and leaves the
/// arrivals where they were for the next change.
pub const MAX_DUE: f64 = 366.0 * 86_400.0;

fn end_of(plan: &Plan, horizon: Option<f64>) -> Option<f64> {
    let end = match (plan.length(), horizon) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => MAX_DUE,
    };
    Some(end.min(MAX_DUE))
}

fn exp1(rng: &mut SmallRng) -> f64 {
    // 1 - u is in (0, 1], so the log is finite.
    -(1.0 - rng.random::<f64>()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderType::{Clothing, Food};

    fn constant(food: f64, clothing: f64) -> Profile {
        Profile {
            shape: Shape::Constant,
            rates: [food, clothing],
            flash_sales: None,
        }
    }

    fn dues(plan: Plan, t: OrderType, p: ArrivalProcess, n: usize) -> Vec<f64> {
        let mut a = Arrivals::new(plan, t, p, 7);
        (0..n).map_while(|_| a.next_due()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn a_tiny_constant_rate_costs_one_division_and_stops_at_the_horizon() {
        // 1e-12/s in 5 ms slices would be 2e14 steps: this returns at once or never.
        let plan = Plan::single(constant(1e-12, 0.0));
        let mut a = Arrivals::new(plan.clone(), Food, ArrivalProcess::Uniform, 7);
        let due = a.next_due().expect("due, far away");
        assert!(close(due * 1e-12, 1e-9), "{due}"); // the first uniform gap is 1e-9 units
        let mut a = Arrivals::new(plan, Food, ArrivalProcess::Poisson, 7).until(Some(2.0));
        assert_eq!(a.next_due(), None, "nothing is due within a 2 s run");
    }

    #[test]
    fn asked_is_the_rate_integrated_over_the_run() {
        let steady = Plan::single(constant(10.0, 4.0));
        assert!((steady.asked(OrderType::Food, 60.0) - 600.0).abs() < 1e-9);
        assert!((steady.asked(OrderType::Clothing, 0.5) - 2.0).abs() < 1e-9);
        assert_eq!(steady.asked(OrderType::Food, 0.0), 0.0);
        // A ramp from 0 to 10/s over 10 s asks for 50.
        let ramp = Plan::single(Profile {
            shape: Shape::Ramp {
                from: 0.0,
                over: 10.0,
            },
            rates: [10.0, 0.0],
            flash_sales: None,
        });
        assert!((ramp.asked(OrderType::Food, 10.0) - 50.0).abs() < 1e-6);
        // Phases: 10 s at 10/s, then 5/s; asked up to 15 s.
        let phases = Plan {
            phases: vec![
                Phase {
                    name: "a".into(),
                    duration: Some(10.0),
                    offset: 0.0,
                    profile: constant(10.0, 0.0),
                },
                Phase {
                    name: "b".into(),
                    duration: None,
                    offset: 0.0,
                    profile: constant(5.0, 0.0),
                },
            ],
            shard: (1, 4),
        };
        assert!((phases.asked(OrderType::Food, 15.0) - 125.0 / 4.0).abs() < 1e-9);
        assert!((phases.asked(OrderType::Food, 4.0) - 10.0).abs() < 1e-9);
        // Spans add up to the whole, across phase boundaries and inside a shaped phase.
        assert!((phases.asked_between(OrderType::Food, 8.0, 12.0) - 30.0 / 4.0).abs() < 1e-9);
        let parts: f64 = (0..10)
            .map(|k| ramp.asked_between(OrderType::Food, f64::from(k), f64::from(k + 1)))
            .sum();
        assert!((parts - 50.0).abs() < 1e-6, "{parts}");
        assert!((ramp.asked_between(OrderType::Food, 9.0, 10.0) - 9.5).abs() < 1e-6);
        // A year of a shaped profile: a bounded number of steps (a million), not 3e9.
        let daily = Plan::single(Profile {
            shape: Shape::Daily {
                day_length: 86_400.0,
                start_hour: 0.0,
            },
            rates: [10.0, 0.0],
            flash_sales: None,
        });
        let year = daily.asked(OrderType::Food, 366.0 * 86_400.0);
        let one_day = daily.asked(OrderType::Food, 86_400.0);
        assert!((year / one_day - 366.0).abs() < 0.5, "{year} vs {one_day}");
    }

    #[test]
    fn tick_after_rounds_up_to_the_next_boundary() {
        let ms = 0.001;
        for (due, tick, end, want) in [
            (0.0123, 0.0, None, 0.0123),    // no ticks: each at its own time
            (0.0, ms, None, 0.0),           // on the start
            (0.0005, ms, None, 0.001),      // between boundaries: the next one
            (0.002, ms, None, 0.002),       // on a boundary: that one
            (0.0021, 0.0005, None, 0.0025), // any tick length
            (3.5, 0.25, Some(10.0), 3.5),
            (0.95, 0.3, Some(1.0), 1.0), // the last boundary (1.2) is after the end
            (0.0123, 0.0, Some(0.01), 0.0123), // no ticks: the end changes nothing
        ] {
            assert!(
                close(tick_after(due, tick, end), want),
                "{due} {tick} {end:?}"
            );
        }
        // Due times summed from many steps land a hair off the boundary they are meant for.
        let mut due = 0.0;
        for _ in 0..10_000 {
            due += 0.0001;
        }
        assert!(
            (due - 1.0f64).abs() > 0.0,
            "the sum is meant to miss 1.0 exactly"
        );
        assert!(close(tick_after(due, ms, None), 1.0));
        assert!(close(tick_after(1.0 + 1e-7, ms, None), 1.001));
    }

    #[test]
    fn constant_uniform_due_times() {
        let got = dues(
            Plan::single(constant(10.0, 4.0)),
            Food,
            ArrivalProcess::Uniform,
            4,
        );
        let want = [0.0, 0.1, 0.2, 0.3];
        assert!(got.iter().zip(want).all(|(g, w)| close(*g, w)), "{got:?}");
        let got = dues(
            Plan::single(constant(10.0, 4.0)),
            Clothing,
            ArrivalProcess::Uniform,
            3,
        );
        let want = [0.0, 0.25, 0.5];
        assert!(got.iter().zip(want).all(|(g, w)| close(*g, w)), "{got:?}");
        let got = dues(
            Plan::single(constant(0.5, 0.0)),
            Food,
            ArrivalProcess::Uniform,
            2,
        );
        assert!(close(got[1], 2.0), "fractional rate: {got:?}");
    }

    #[test]
    fn a_uniform_run_of_d_seconds_has_rate_times_d_requests_due_in_it() {
        for (rate, d) in [
            (2000.0, 2.0),
            (10000.0, 2.0),
            (10000.0, 5.0),
            (3000.0, 1.0),
            (7.0, 3.0),
        ] {
            let n = (rate * d) as usize;
            let got = dues(
                Plan::single(constant(rate, 0.0)),
                Food,
                ArrivalProcess::Uniform,
                n + 5,
            );
            let within = got.iter().filter(|&&t| before_end(t, d)).count();
            assert_eq!(
                within,
                n,
                "{rate}/s for {d} s: last dues {:?}",
                &got[n - 2..n + 1]
            );
        }
    }

    #[test]
    fn zero_rate_means_no_requests() {
        assert!(dues(
            Plan::single(constant(5.0, 0.0)),
            Clothing,
            ArrivalProcess::Uniform,
            1
        )
        .is_empty());
    }

    #[test]
    fn shape_factors() {
        let table: &[(Shape, f64, f64)] = &[
            (Shape::Constant, 123.0, 1.0),
            (
                Shape::Ramp {
                    from: 0.0,
                    over: 10.0,
                },
                0.0,
                0.0,
            ),
            (
                Shape::Ramp {
                    from: 0.0,
                    over: 10.0,
                },
                5.0,
                0.5,
            ),
            (
                Shape::Ramp {
                    from: 0.2,
                    over: 10.0,
                },
                5.0,
                0.6,
            ),
            (
                Shape::Ramp {
                    from: 0.0,
                    over: 10.0,
                },
                30.0,
                1.0,
            ),
            (
                Shape::Steps {
                    steps: 4,
                    every: 10.0,
                },
                0.0,
                0.25,
            ),
            (
                Shape::Steps {
                    steps: 4,
                    every: 10.0,
                },
                10.0,
                0.5,
            ),
            (
                Shape::Steps {
                    steps: 4,
                    every: 10.0,
                },
                39.9,
                1.0,
            ),
            (
                Shape::Steps {
                    steps: 4,
                    every: 10.0,
                },
                100.0,
                1.0,
            ),
            (
                Shape::Sine {
                    period: 60.0,
                    amplitude: 0.5,
                },
                0.0,
                1.0,
            ),
            (
                Shape::Sine {
                    period: 60.0,
                    amplitude: 0.5,
                },
                15.0,
                1.5,
            ),
            (
                Shape::Sine {
                    period: 60.0,
                    amplitude: 0.5,
                },
                45.0,
                0.5,
            ),
            (
                Shape::Sine {
                    period: 60.0,
                    amplitude: 2.0,
                },
                45.0,
                0.0,
            ),
        ];
        for (shape, t, want) in table {
            let got = shape.factor(*t, Food);
            assert!(
                (got - want).abs() < 1e-9,
                "{shape:?} at {t}: {got} != {want}"
            );
        }
    }

    #[test]
    fn ramp_due_times_follow_the_integral() {
        // Rate 0 -> 10/s over 10 s: cumulative 0.5 t^2; request n is due at sqrt(2 n).
        let plan = Plan::single(Profile {
            shape: Shape::Ramp {
                from: 0.0,
                over: 10.0,
            },
            rates: [10.0, 0.0],
            flash_sales: None,
        });
        let got = dues(plan, Food, ArrivalProcess::Uniform, 9);
        for (n, g) in got.iter().enumerate() {
            let want = (2.0 * n as f64).sqrt();
            assert!((g - want).abs() < 0.01, "request {n}: {g} vs {want}");
        }
    }

    #[test]
    fn daily_profile_has_meal_and_evening_peaks() {
        let food = |h| daily_profile(h, Food);
        let clothing = |h| daily_profile(h, Clothing);
        let table = [
            (food(12.0), 0.95, 1.0),
            (food(18.5), 0.75, 0.9),
            (food(3.0), 0.0, 0.06),
            (food(15.5), 0.05, 0.3),
            (clothing(20.5), 0.9, 1.0),
            (clothing(3.0), 0.0, 0.06),
            (clothing(12.0), 0.2, 0.4),
        ];
        for (i, (v, lo, hi)) in table.iter().enumerate() {
            assert!((lo..=hi).contains(&v), "row {i}: {v} not in [{lo}, {hi}]");
        }
        assert!(
            food(12.0) > food(9.5) && food(12.0) > food(15.0),
            "lunch is a peak"
        );
        assert!(clothing(20.5) > clothing(17.0) && clothing(20.5) > clothing(23.5));
        // Continuous across midnight.
        assert!((food(23.999) - food(0.0)).abs() < 1e-3);
    }

    #[test]
    fn daily_shape_maps_run_time_to_hours() {
        let s = Shape::Daily {
            day_length: 240.0,
            start_hour: 0.0,
        };
        // 240 s per day: noon is 120 s in, and a day later it repeats.
        assert!((s.factor(120.0, Food) - daily_profile(12.0, Food)).abs() < 1e-12);
        assert!((s.factor(360.0, Food) - daily_profile(12.0, Food)).abs() < 1e-12);
    }

    #[test]
    fn poisson_mean_and_spread() {
        let got = dues(
            Plan::single(constant(100.0, 0.0)),
            Food,
            ArrivalProcess::Poisson,
            20_001,
        );
        let gaps: Vec<f64> = got.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.01).abs() < 0.0003, "mean gap {mean}");
        // Exponential: standard deviation equals the mean.
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.05,
            "cv {}",
            var.sqrt() / mean
        );
        assert!(gaps.iter().all(|g| *g >= 0.0));
    }

    #[test]
    fn same_seed_same_schedule() {
        let plan = Plan::single(constant(50.0, 20.0));
        let a = dues(plan.clone(), Food, ArrivalProcess::Poisson, 100);
        let b = dues(plan, Food, ArrivalProcess::Poisson, 100);
        assert_eq!(a, b);
    }

    #[test]
    fn shards_split_the_rate_and_interleave() {
        let mut plan = Plan::single(constant(30.0, 0.0));
        let mut all = Vec::new();
        for i in 0..3 {
            plan.shard = (i, 3);
            let d = dues(plan.clone(), Food, ArrivalProcess::Uniform, 10);
            assert!(close(d[1] - d[0], 0.1), "each replica at 10/s: {d:?}");
            all.extend(d);
        }
        all.sort_by(f64::total_cmp);
        for (n, t) in all.iter().enumerate().take(30) {
            assert!(
                (t - n as f64 / 30.0).abs() < 1e-9,
                "together 30/s evenly: {all:?}"
            );
        }
    }

    #[test]
    fn phases_run_back_to_back_and_end() {
        let plan = Plan {
            phases: vec![
                Phase {
                    name: "a".into(),
                    duration: Some(1.0),
                    offset: 0.0,
                    profile: constant(10.0, 0.0),
                },
                Phase {
                    name: "b".into(),
                    duration: Some(1.0),
                    offset: 0.0,
                    profile: constant(20.0, 0.0),
                },
            ],
            shard: (0, 1),
        };
        assert_eq!(plan.length(), Some(2.0));
        assert_eq!(plan.phase_at(0.5), Some((0, 0.0)));
        assert_eq!(plan.phase_at(1.5), Some((1, 1.0)));
        assert_eq!(plan.phase_at(2.5), None);
        let got = dues(plan, Food, ArrivalProcess::Uniform, 100);
        assert_eq!(got.len(), 30, "10 in phase a, 20 in phase b");
        assert!(got.iter().all(|t| *t < 2.0));
    }

    #[test]
    fn a_silent_phase_is_skipped_whole() {
        // No food for an hour, then 4/s: food orders start as the silent phase ends and come
        // every quarter of a second, found by jumping over it rather than integrating it.
        let plan = Plan {
            phases: vec![
                Phase {
                    name: "quiet".into(),
                    duration: Some(3600.0),
                    offset: 0.0,
                    profile: constant(0.0, 1.0),
                },
                Phase {
                    name: "busy".into(),
                    duration: None,
                    offset: 0.0,
                    profile: constant(4.0, 1.0),
                },
            ],
            shard: (0, 1),
        };
        let got = dues(plan.clone(), Food, ArrivalProcess::Uniform, 3);
        assert!(close(got[0], 3600.0), "{got:?}");
        assert!(close(got[1], 3600.25), "{got:?}");
        assert!(close(got[2], 3600.5), "{got:?}");
        // Silent for good (an open-ended zero-rate phase): nothing is ever due.
        let mut silent = plan;
        silent.phases.truncate(1);
        silent.phases[0].duration = None;
        assert!(dues(silent, Food, ArrivalProcess::Uniform, 3).is_empty());
    }

    #[test]
    fn flash_sales_are_deterministic_windows() {
        let f = FlashSales {
            every: 60.0,
            duration: 10.0,
            factor: 5.0,
            seed: 3,
        };
        let windows: Vec<_> = (0..50).filter_map(|k| f.window(k)).collect();
        assert!(
            (15..=35).contains(&windows.len()),
            "about half the slots: {}",
            windows.len()
        );
        let k = (0..50).find(|&k| f.window(k).is_some()).expect("a sale");
        let (a, b) = f.window(k).expect("window");
        assert!(
            a >= k as f64 * 60.0 && b <= (k + 1) as f64 * 60.0,
            "inside its slot"
        );
        assert_eq!(f.factor((a + b) / 2.0, Clothing), 5.0);
        assert_eq!(f.factor((a + b) / 2.0, Food), 2.0);
        let quiet = (0..50)
            .find(|&k| f.window(k).is_none())
            .expect("a quiet slot");
        assert_eq!(f.factor(quiet as f64 * 60.0 + 30.0, Clothing), 1.0);
        assert_eq!(f.window(k), f.clone().window(k));
    }
}
