//! Live changes through the dispatch core: scripts of steps with changes between them, as an
//! executor would meet them, and the arrival process's behaviour across a change.

use std::sync::Arc;

use order_server::contract::OrderType::{self, Clothing, Food};

use super::{Dispatch, Limits, Step, StopReason};
use crate::change::{Change, Source};
use crate::live::Live;
use crate::schedule::{ArrivalProcess, Arrivals, Phase, Plan, Profile, Shape};

fn constant(food: f64, clothing: f64) -> Profile {
    Profile {
        shape: Shape::Constant,
        rates: [food, clothing],
        flash_sales: None,
    }
}

fn steered(plan: Plan, process: ArrivalProcess, duration: Option<f64>) -> (Dispatch, Arc<Live>) {
    let live = Arc::new(Live::new(plan.clone(), duration.or(plan.length())));
    let d = Dispatch::from_arrivals(
        OrderType::ALL.map(|t| Arrivals::new(plan.clone(), t, process, 1)),
        Limits {
            duration,
            requests: None,
            tick: 0.0,
        },
    )
    .steered_by(Arc::clone(&live));
    (d, live)
}

/// What an executor meets between steps.
#[derive(Debug, Clone)]
enum Act {
    /// Asks for the next step at this time and expects it; a `Send` goes out at once.
    At(f64, Step),
    /// A front-end submits this change.
    Submit(Change),
}
use Act::{At, Submit};

fn send(t: OrderType, at: f64) -> Step {
    Step::Send(super::Due { t, at, first: true })
}

fn close(a: &Step, b: &Step) -> bool {
    match (a, b) {
        (Step::Send(x), Step::Send(y)) => x.t == y.t && (x.at - y.at).abs() < 1e-8,
        (Step::WaitUntil(x), Step::WaitUntil(y)) => (x - y).abs() < 1e-8,
        _ => a == b,
    }
}

#[test]
fn changes_apply_at_the_next_step_and_the_gap_in_progress_carries_over() {
    let food_only = |r| Plan::single(constant(r, 0.0));
    // Uniform at 10/s: due at (almost) 0, 0.1, 0.2, 0.3, ...
    type Case<'a> = (&'a str, Plan, Option<f64>, Vec<Act>);
    let cases: Vec<Case> = vec![
        (
            "10/s to 20/s at 0.35: half of the gap in progress is used, the rest at 20/s",
            food_only(10.0),
            None,
            vec![
                At(0.3, send(Food, 0.3)),
                At(0.3, Step::WaitUntil(0.4)),
                Submit(Change::Rates([Some(20.0), None])),
                At(0.35, Step::WaitUntil(0.375)),
                At(0.375, send(Food, 0.375)),
                At(0.375, Step::WaitUntil(0.425)),
            ],
        ),
        (
            "a change never brings a burst: 10/s to 1000/s sends one at a time from the change",
            food_only(10.0),
            None,
            vec![
                At(0.3, send(Food, 0.3)),
                Submit(Change::Rates([Some(1000.0), None])),
                At(0.35, Step::WaitUntil(0.3505)),
                At(0.3505, send(Food, 0.3505)),
                At(0.3505, Step::WaitUntil(0.3515)),
            ],
        ),
        (
            "all rates zero: the run waits for the next change instead of ending",
            food_only(10.0),
            None,
            vec![
                At(0.3, send(Food, 0.3)),
                Submit(Change::Rates([Some(0.0), None])),
                At(0.35, Step::WaitUntil(0.6)),
                At(5.0, Step::WaitUntil(5.25)),
                Submit(Change::Rates([Some(10.0), None])),
                // Half a gap was left at the pause, and it is taken up at 10/s again.
                At(6.0, Step::WaitUntil(6.05)),
                At(6.05, send(Food, 6.05)),
            ],
        ),
        (
            "a run with a fixed length still ends on time, whatever the change",
            food_only(10.0),
            Some(1.0),
            vec![
                Submit(Change::Rates([Some(0.0), None])),
                At(0.05, Step::WaitUntil(1.0)),
                At(1.0, Step::Stop(StopReason::Duration)),
            ],
        ),
        (
            "a due time already passed stands: the change applies after it",
            food_only(10.0),
            None,
            vec![
                At(0.3, send(Food, 0.3)),
                At(0.3, Step::WaitUntil(0.4)),
                Submit(Change::Rates([Some(5.0), None])),
                At(0.45, send(Food, 0.4)),
                // 0.05 s of the next gap ran at 10/s (half a unit), the rest at 5/s.
                At(0.45, Step::WaitUntil(0.55)),
            ],
        ),
    ];
    for (name, plan, duration, script) in cases {
        let (mut d, live) = steered(plan, ArrivalProcess::Uniform, duration);
        // Skips the requests before the script's first step.
        let first = script
            .iter()
            .find_map(|a| match a {
                At(t, _) => Some(*t),
                Submit(_) => None,
            })
            .unwrap_or(0.0);
        while let Step::Send(due) = d.next(first - 1e-6) {
            assert!(due.at < first, "{name}: {due:?}");
            d.sent();
        }
        for (n, act) in script.iter().enumerate() {
            match act {
                Submit(c) => {
                    live.submit(c.clone(), Source::Api).expect("taken");
                }
                At(now, want) => {
                    // Uniform due times sit a hair (1e-10 s) after the round ones.
                    let got = d.next(*now + 1e-9);
                    assert!(
                        close(&got, want),
                        "{name}, step {n} at {now}: {got:?}, not {want:?}"
                    );
                    if let Step::Send(_) = got {
                        d.sent();
                    }
                }
            }
        }
    }
}

#[test]
fn a_scenario_runs_then_the_rates_before_it_come_back() {
    let (mut d, live) = steered(
        Plan::single(constant(10.0, 0.0)),
        ArrivalProcess::Uniform,
        None,
    );
    let burst = Change::Scenario {
        name: "burst".into(),
        phases: vec![Phase {
            name: "high".into(),
            duration: Some(1.0),
            offset: 0.0,
            profile: constant(100.0, 0.0),
        }],
    };
    let count = |d: &mut Dispatch, from: f64, to: f64| {
        let mut n = 0;
        let mut now = from;
        while now < to {
            match d.next(now) {
                Step::Send(_) => {
                    d.sent();
                    n += 1;
                }
                Step::WaitUntil(t) => now = t,
                Step::Stop(r) => panic!("stopped: {r}"),
            }
        }
        n
    };
    assert_eq!(count(&mut d, 0.0, 2.0), 20);
    live.submit(burst, Source::Page).expect("taken");
    let during = count(&mut d, 2.0, 3.0);
    assert!((99..=101).contains(&during), "{during}");
    let after = count(&mut d, 3.0, 5.0);
    assert!((19..=21).contains(&after), "{after}");
    assert!(live.scenario(2.5).is_some());
    assert!(live.scenario(3.5).is_none());
}

#[test]
fn poisson_arrivals_after_a_change_are_poisson_at_the_new_rate_with_no_burst() {
    for seed in 1..=5u64 {
        let plan = Plan::single(constant(50.0, 0.0));
        let live = Arc::new(Live::new(plan.clone(), None));
        let mut d = Dispatch::from_arrivals(
            OrderType::ALL.map(|t| Arrivals::new(plan.clone(), t, ArrivalProcess::Poisson, seed)),
            Limits::default(),
        )
        .steered_by(Arc::clone(&live));
        let mut sends = Vec::new();
        let mut now = 0.0;
        let mut changed = false;
        while now < 16.0 {
            if !changed && now >= 10.0 {
                live.submit(Change::Rates([Some(200.0), None]), Source::Api)
                    .expect("taken");
                changed = true;
            }
            match d.next(now) {
                Step::Send(due) => {
                    sends.push(due.at);
                    d.sent();
                }
                // The executor wakes at the change too.
                Step::WaitUntil(t) => now = if !changed && t > 10.0 { 10.0 } else { t },
                Step::Stop(r) => panic!("stopped: {r}"),
            }
        }
        // 1 s to 6 s after the change: 1000 expected, sd about 32.
        let n = sends.iter().filter(|&&t| (11.0..16.0).contains(&t)).count() as f64;
        assert!(
            (n - 1000.0).abs() < 5.0 * 1000f64.sqrt(),
            "seed {seed}: {n}"
        );
        // No 100 ms window after the change holds more than 20 + 6 sd.
        let limit = 20.0 + 6.0 * 20f64.sqrt();
        for w in 0..60 {
            let lo = 10.0 + f64::from(w) * 0.1;
            let k = sends.iter().filter(|&&t| t >= lo && t < lo + 0.1).count() as f64;
            assert!(k <= limit, "seed {seed}: {k} in [{lo}, +0.1)");
        }
        // Before the change: 50/s.
        let before = sends.iter().filter(|&&t| (4.0..9.0).contains(&t)).count() as f64;
        assert!(
            (before - 250.0).abs() < 5.0 * 250f64.sqrt(),
            "seed {seed}: {before}"
        );
        assert!(sends.windows(2).all(|w| w[0] <= w[1]), "in due order");
        let _ = Clothing;
    }
}

#[test]
fn a_change_while_behind_keeps_the_requests_already_due() {
    let (mut d, live) = steered(
        Plan::single(constant(10.0, 0.0)),
        ArrivalProcess::Uniform,
        None,
    );
    assert!(
        matches!(d.next(1e-9), Step::Send(_)),
        "the first, at the start"
    );
    d.sent();
    // The executor comes back a second late: 0.1 to 1.0 s are due, at the old 10/s.
    live.submit(Change::Rates([Some(20.0), None]), Source::Api)
        .expect("taken");
    let mut sent = Vec::new();
    let wait = loop {
        match d.next(1.0 + 1e-9) {
            Step::Send(due) => {
                sent.push(due.at);
                d.sent();
            }
            other => break other,
        }
    };
    assert_eq!(sent.len(), 10, "{sent:?}");
    assert!(close(&wait, &Step::WaitUntil(1.05)), "{wait:?}");
}

#[test]
fn a_tiny_rate_or_none_waits_and_a_fixed_end_still_stops_the_run() {
    // 1e-300/s would put the next due time past any clock: the run waits instead.
    let (mut d, live) = steered(
        Plan::single(constant(10.0, 0.0)),
        ArrivalProcess::Poisson,
        None,
    );
    live.submit(Change::Rates([Some(1e-300), None]), Source::Api)
        .expect("taken");
    let step = d.next(0.0);
    assert!(close(&step, &Step::WaitUntil(0.25)), "{step:?}");
    // And the arrivals are where they were: a later rate starts them again.
    live.submit(Change::Rates([Some(5.0), None]), Source::Api)
        .expect("taken");
    let mut resumed = 0;
    let mut now = 1.0;
    while now < 3.0 {
        match d.next(now) {
            Step::Send(_) => {
                resumed += 1;
                d.sent();
            }
            Step::WaitUntil(t) => now = t,
            Step::Stop(r) => panic!("stopped: {r}"),
        }
    }
    assert!(
        (3..=25).contains(&resumed),
        "{resumed} sends at 5/s over 2 s"
    );
    // A scenario's plan of 2 s without --duration: rates 0 wait out its end, then it ends.
    let plan = Plan {
        phases: vec![Phase {
            name: "a".into(),
            duration: Some(2.0),
            offset: 0.0,
            profile: constant(10.0, 0.0),
        }],
        shard: (0, 1),
    };
    let (mut d, live) = steered(plan, ArrivalProcess::Uniform, None);
    live.submit(Change::Rates([Some(0.0), Some(0.0)]), Source::Api)
        .expect("taken");
    assert!(close(&d.next(0.0), &Step::WaitUntil(0.25)));
    assert!(close(&d.next(1.9), &Step::WaitUntil(2.0)));
    assert_eq!(d.next(2.0), Step::Stop(StopReason::ScenarioEnd));
}
