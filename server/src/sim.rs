//! The simulated shop behind each order: how long an order takes (log-normal, per order type,
//! growing with load), whether it fails, its amount and item count. Every draw comes from a
//! generator seeded by the configured seed and the order's sequence number, so a run is
//! reproducible and no lock is shared between requests.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

use crate::contract::OrderType;
use crate::faults::FaultEffect;

/// Simulation settings (validated by [`crate::config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Off: no artificial waiting and no deliberate failures (benchmarks).
    pub enabled: bool,
    pub seed: u64,
    /// Median processing time per order type, indexed by [`OrderType::index`].
    pub median_latency: [Duration; 2],
    /// Sigma of the log-normal processing time.
    pub sigma: f64,
    /// In-flight requests at which processing time has doubled.
    pub load_knee: u32,
    /// Base failure probability.
    pub error_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            enabled: true,
            seed: 42,
            median_latency: [Duration::from_millis(30), Duration::from_millis(45)],
            sigma: 0.5,
            load_knee: 200,
            error_rate: 0.0005,
        }
    }
}

/// What happens to one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub delay: Duration,
    pub fail: bool,
    pub amount: f64,
    pub items: u32,
}

/// Median order value and spread per type: a food order is a meal, clothing is a basket.
const AMOUNT_MEDIAN: [f64; 2] = [45.0, 260.0];
const AMOUNT_SIGMA: [f64; 2] = [0.6, 0.8];
const MAX_ITEMS: [u32; 2] = [6, 4];

#[derive(Debug, Clone)]
pub struct Simulator {
    cfg: SimConfig,
    /// Built once: constructing a distribution takes a logarithm, per order and per draw.
    amounts: [Option<LogNormal<f64>>; 2],
    latencies: [Option<LogNormal<f64>>; 2],
}

impl Simulator {
    pub fn new(cfg: SimConfig) -> Self {
        let dist = |median: f64, sigma: f64| {
            (median > 0.0)
                .then(|| LogNormal::new(median.ln(), sigma).ok())
                .flatten()
        };
        Simulator {
            amounts: [0, 1].map(|i| dist(AMOUNT_MEDIAN[i], AMOUNT_SIGMA[i])),
            latencies: [0, 1].map(|i| dist(cfg.median_latency[i].as_secs_f64(), cfg.sigma)),
            cfg,
        }
    }

    /// Draws the outcome of order number `seq` while `in_flight` requests are being served.
    pub fn draw(&self, t: OrderType, seq: u64, in_flight: u64, fault: &FaultEffect) -> Outcome {
        // A distinct, well-mixed stream per order: same seed and sequence, same outcome.
        let mut rng =
            SmallRng::seed_from_u64(self.cfg.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let i = t.index();
        let amount =
            draw(self.amounts[i].as_ref(), AMOUNT_MEDIAN[i], &mut rng).clamp(1.0, 50_000.0);
        let amount = (amount * 100.0).round() / 100.0;
        let items = rng.random_range(1..=MAX_ITEMS[i]);

        let mut delay = fault.extra_latency;
        let mut fail_p = fault.extra_error_rate;
        if self.cfg.enabled {
            let median = self.cfg.median_latency[i].as_secs_f64();
            let base = draw(self.latencies[i].as_ref(), median, &mut rng);
            let load = 1.0 + in_flight as f64 / f64::from(self.cfg.load_knee);
            delay += Duration::from_secs_f64((base * load).min(30.0));
            fail_p = 1.0 - (1.0 - fail_p) * (1.0 - self.cfg.error_rate);
        }
        let fail = fail_p > 0.0 && rng.random_bool(fail_p.min(1.0));
        Outcome {
            delay,
            fail,
            amount,
            items,
        }
    }
}

/// A draw from `dist`; without one (median 0, or a spread the distribution rejects) the
/// median itself, clamped at 0.
fn draw(dist: Option<&LogNormal<f64>>, median: f64, rng: &mut SmallRng) -> f64 {
    match dist {
        Some(d) => d.sample(rng),
        None => median.max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q) as usize]
    }

    #[test]
    fn same_seed_same_outcomes() {
        let a = Simulator::new(SimConfig::default());
        let b = Simulator::new(SimConfig::default());
        for seq in 0..100 {
            let fx = FaultEffect::default();
            assert_eq!(
                a.draw(OrderType::Food, seq, 0, &fx),
                b.draw(OrderType::Food, seq, 0, &fx)
            );
        }
    }

    #[test]
    fn latency_is_skewed_per_type_and_grows_with_load() {
        let sim = Simulator::new(SimConfig::default());
        let fx = FaultEffect::default();
        let sample = |t, load| -> Vec<f64> {
            (0..20_000)
                .map(|s| sim.draw(t, s, load, &fx).delay.as_secs_f64())
                .collect()
        };
        let food = sample(OrderType::Food, 0);
        let p50 = quantile(food.clone(), 0.5);
        let p99 = quantile(food.clone(), 0.99);
        assert!((0.027..0.033).contains(&p50), "food median {p50}");
        // Log-normal: the tail is far from the median (a normal distribution would be ~1.5x).
        assert!(p99 > 2.5 * p50, "p99 {p99} vs p50 {p50}");
        let clothing_p50 = quantile(sample(OrderType::Clothing, 0), 0.5);
        assert!(clothing_p50 > 1.3 * p50, "clothing slower than food");
        let loaded_p50 = quantile(sample(OrderType::Food, 200), 0.5);
        assert!(
            (1.8..2.2).contains(&(loaded_p50 / p50)),
            "knee doubles latency"
        );
    }

    #[test]
    fn base_error_rate_and_off_switch() {
        let cfg = SimConfig {
            error_rate: 0.05,
            ..SimConfig::default()
        };
        let sim = Simulator::new(cfg.clone());
        let fx = FaultEffect::default();
        let failed = (0..20_000)
            .filter(|&s| sim.draw(OrderType::Food, s, 0, &fx).fail)
            .count();
        assert!(
            (800..1200).contains(&failed),
            "{failed} failures of 20000 at 5%"
        );

        let off = Simulator::new(SimConfig {
            enabled: false,
            ..cfg
        });
        for s in 0..5_000 {
            let o = off.draw(OrderType::Clothing, s, 500, &fx);
            assert!(!o.fail && o.delay.is_zero(), "{o:?}");
        }
    }

    #[test]
    fn faults_add_errors_and_latency() {
        let sim = Simulator::new(SimConfig::default());
        let fx = FaultEffect {
            extra_error_rate: 1.0,
            extra_latency: Duration::from_millis(300),
            stall_until: None,
        };
        let o = sim.draw(OrderType::Food, 7, 0, &fx);
        assert!(o.fail);
        assert!(o.delay >= Duration::from_millis(300));
    }
}
