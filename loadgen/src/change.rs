//! Live changes as values, and what each does to a run's plan, without I/O: new constant rates
//! from a moment on, a scenario's phases spliced in (the plan in force before it resumes
//! after them), or a running scenario cut short. The past of a plan is never rewritten, so
//! what it asked for up to a change stays what it asked for; the run's end stays where it
//! was; and a plan that collects many changes keeps its number of phases bounded by folding
//! its oldest finished phases into one of the same requests. [`crate::live`] applies these
//! inside the dispatch core.

use order_server::contract::OrderType;
use serde::Serialize;

use crate::schedule::{Phase, Plan, Profile, Shape};

/// A plan holds at most this many phases after a change (reports take up to 1,000).
pub const MAX_PHASES: usize = 900;
/// The name of a phase that folds finished phases together.
const FOLDED: &str = "earlier";

/// Who asked for a change: the report's and the events' `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The control API, called by a script.
    Api,
    /// The control page (the API called by its own page).
    Page,
    /// A scenario's own steps (its faults).
    Scenario,
    /// The terminal view's keys.
    Tui,
    /// The capacity search.
    Capacity,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Page => "page",
            Source::Scenario => "scenario",
            Source::Tui => "tui",
            Source::Capacity => "capacity",
        }
    }
}

/// One change to a running load; its time is when the dispatch core applies it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Constant rates from now on, fleet-wide like `--food-rate` (a shard sends its share);
    /// `None` keeps that type at the rate asked now.
    Rates([Option<f64>; 2]),
    /// A scenario's phases from now, then the plan as it would have gone on.
    Scenario { name: String, phases: Vec<Phase> },
    /// What is left of the scenario running from `from` to `to` (seconds) is dropped.
    EndScenario { to: f64 },
}

/// The plan after `change` at `at` seconds, in a run that ends at `end` (if it has a fixed
/// length, which no change moves).
pub fn edit(plan: &Plan, change: &Change, at: f64, end: Option<f64>) -> Plan {
    let mut phases = head(plan, at);
    match change {
        Change::Rates(rates) => {
            let shards = f64::from(plan.shard.1.max(1));
            let rates = OrderType::ALL.map(|t| {
                rates[t.index()]
                    .unwrap_or_else(|| plan.rate(at, t) * shards)
                    .max(0.0)
            });
            phases.push(Phase {
                name: "live".into(),
                duration: None,
                offset: 0.0,
                profile: Profile {
                    shape: Shape::Constant,
                    rates,
                    flash_sales: None,
                },
            });
        }
        Change::Scenario { name, phases: add } => {
            phases.extend(add.iter().map(|p| Phase {
                name: format!("{name}: {}", p.name),
                ..p.clone()
            }));
            phases.extend(tail(plan, at));
        }
        Change::EndScenario { to } => phases.extend(tail(plan, to.max(at))),
    }
    let mut out = Plan {
        phases,
        shard: plan.shard,
    };
    clip(&mut out, end);
    fold(&mut out, at);
    out
}

/// The phases before `at`, the one running then cut at `at`.
fn head(plan: &Plan, at: f64) -> Vec<Phase> {
    let mut out = Vec::new();
    let mut start = 0.0;
    for p in &plan.phases {
        if start >= at {
            break;
        }
        let len = p.duration.map_or(at - start, |d| d.min(at - start));
        out.push(Phase {
            duration: Some(len),
            ..p.clone()
        });
        start += len;
    }
    out
}

/// The phases from `at` on, the one running then starting where it was at `at`.
fn tail(plan: &Plan, at: f64) -> Vec<Phase> {
    let mut out = Vec::new();
    let mut start = 0.0;
    for p in &plan.phases {
        let end = p.duration.map(|d| start + d);
        if end.is_some_and(|e| e <= at) {
            start = end.unwrap_or(start);
            continue;
        }
        let into = (at - start).max(0.0);
        out.push(Phase {
            duration: p.duration.map(|d| d - into),
            offset: p.offset + into,
            ..p.clone()
        });
        start = end.unwrap_or(start);
    }
    out
}

/// Cuts the plan at `end`, so a change never makes a run with a fixed length longer; an
/// open-ended last phase stays open-ended when there is no end.
fn clip(plan: &mut Plan, end: Option<f64>) {
    let Some(end) = end else { return };
    let mut start = 0.0;
    let mut keep = 0;
    for p in &mut plan.phases {
        if start >= end {
            break;
        }
        let len = p.duration.map_or(end - start, |d| d.min(end - start));
        p.duration = Some(len);
        start += len;
        keep += 1;
    }
    plan.phases.truncate(keep);
}

/// Folds the two oldest phases into one while the plan has too many, as long as both ended
/// by `at`: the folded phase asks for the same requests of each type over the same span, so
/// reports and the series keep their totals.
fn fold(plan: &mut Plan, at: f64) {
    while plan.phases.len() > MAX_PHASES {
        let (a, b) = (&plan.phases[0], &plan.phases[1]);
        let (Some(da), Some(db)) = (a.duration, b.duration) else {
            return;
        };
        if da + db > at {
            return;
        }
        let span = da + db;
        let shards = f64::from(plan.shard.1.max(1));
        let rates = OrderType::ALL.map(|t| plan.asked_between(t, 0.0, span) * shards / span);
        plan.phases.splice(
            0..2,
            [Phase {
                name: FOLDED.into(),
                duration: Some(span),
                offset: 0.0,
                profile: Profile {
                    shape: Shape::Constant,
                    rates,
                    flash_sales: None,
                },
            }],
        );
    }
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

    fn phase(name: &str, duration: Option<f64>, profile: Profile) -> Phase {
        Phase {
            name: name.into(),
            duration,
            offset: 0.0,
            profile,
        }
    }

    fn spans(plan: &Plan) -> Vec<(String, Option<f64>, f64)> {
        plan.phases
            .iter()
            .map(|p| (p.name.clone(), p.duration, p.offset))
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn rates_replace_the_plan_from_the_change_and_keep_the_past() {
        let plan = Plan::single(constant(50.0, 10.0));
        let out = edit(&plan, &Change::Rates([Some(200.0), None]), 10.0, None);
        assert_eq!(
            spans(&out),
            vec![("main".into(), Some(10.0), 0.0), ("live".into(), None, 0.0)]
        );
        assert_eq!(out.rate(9.9, Food), 50.0);
        assert_eq!(out.rate(10.0, Food), 200.0);
        assert_eq!(
            out.rate(10.0, Clothing),
            10.0,
            "an absent type keeps its rate"
        );
        assert!(close(out.asked(Food, 10.0), 500.0), "the past is unchanged");
    }

    #[test]
    fn a_shard_speaks_fleet_rates() {
        let mut plan = Plan::single(constant(50.0, 10.0));
        plan.shard = (0, 2);
        let out = edit(&plan, &Change::Rates([Some(100.0), None]), 1.0, None);
        assert_eq!(out.rate(2.0, Food), 50.0, "half of the fleet's 100/s");
        assert_eq!(out.rate(2.0, Clothing), 5.0, "half of the unchanged 10/s");
    }

    #[test]
    fn a_fixed_length_run_keeps_its_end() {
        let plan = Plan {
            phases: vec![
                phase("a", Some(10.0), constant(1.0, 1.0)),
                phase("b", Some(10.0), constant(2.0, 2.0)),
            ],
            shard: (0, 1),
        };
        let out = edit(
            &plan,
            &Change::Rates([Some(5.0), Some(0.0)]),
            4.0,
            Some(20.0),
        );
        assert_eq!(
            spans(&out),
            vec![
                ("a".into(), Some(4.0), 0.0),
                ("live".into(), Some(16.0), 0.0)
            ]
        );
        assert_eq!(out.length(), Some(20.0));
    }

    #[test]
    fn a_scenario_runs_then_the_plan_before_it_resumes_where_it_was() {
        let ramp = Profile {
            shape: Shape::Ramp {
                from: 0.0,
                over: 100.0,
            },
            rates: [100.0, 0.0],
            flash_sales: None,
        };
        let plan = Plan::single(ramp);
        let burst = vec![
            phase("burst", Some(5.0), constant(20.0, 10.0)),
            phase("recovery", Some(3.0), constant(20.0, 10.0)),
        ];
        let out = edit(
            &plan,
            &Change::Scenario {
                name: "error-burst".into(),
                phases: burst,
            },
            30.0,
            None,
        );
        assert_eq!(
            spans(&out),
            vec![
                ("main".into(), Some(30.0), 0.0),
                ("error-burst: burst".into(), Some(5.0), 0.0),
                ("error-burst: recovery".into(), Some(3.0), 0.0),
                ("main".into(), None, 30.0),
            ]
        );
        assert!(close(out.rate(29.0, Food), 29.0));
        assert_eq!(out.rate(31.0, Food), 20.0);
        assert!(
            close(out.rate(38.0, Food), 30.0),
            "the ramp goes on from 30 s"
        );
        // Cut short at 33 s: the ramp comes back at once, still where it was.
        let cut = edit(&out, &Change::EndScenario { to: 38.0 }, 33.0, None);
        assert_eq!(
            spans(&cut),
            vec![
                ("main".into(), Some(30.0), 0.0),
                ("error-burst: burst".into(), Some(3.0), 0.0),
                ("main".into(), None, 30.0),
            ]
        );
        assert!(close(cut.rate(33.0, Food), 30.0));
    }

    #[test]
    fn many_changes_fold_the_oldest_phases_and_keep_what_was_asked() {
        let mut plan = Plan::single(constant(1.0, 1.0));
        let mut asked = 0.0;
        for k in 1..=2000u32 {
            let at = f64::from(k);
            plan = edit(&plan, &Change::Rates([Some(at), None]), at, None);
            asked += f64::from(k - 1).max(1.0);
            assert!(plan.phases.len() <= MAX_PHASES);
        }
        // Up to 2000 s: 1/s for the first second, then k-1 in second k.
        assert!(
            (plan.asked(Food, 2000.0) - asked).abs() < 1e-6 * asked,
            "{} vs {asked}",
            plan.asked(Food, 2000.0)
        );
        assert_eq!(plan.rate(2000.5, Food), 2000.0);
        assert_eq!(plan.phases[0].name, FOLDED);
    }

    #[test]
    fn a_change_at_the_start_or_after_the_end() {
        let plan = Plan::single(constant(1.0, 1.0));
        let out = edit(&plan, &Change::Rates([Some(3.0), None]), 0.0, None);
        assert_eq!(spans(&out), vec![("live".into(), None, 0.0)]);
        let out = edit(&plan, &Change::Rates([Some(3.0), None]), 12.0, Some(10.0));
        assert_eq!(out.length(), Some(10.0));
        assert_eq!(out.rate(5.0, Food), 1.0);
    }
}
