//! The run's once-a-second tick: the target-rate gauge, the time series' sampler (when the run
//! keeps one), and on a terminal a live progress line (rate achieved and scheduled, in flight,
//! errors, p99 of the last interval). Nothing is drawn when standard error is not a terminal.
//! In a steerable run it also reads the live plan (so the gauge and the series follow live
//! changes) and feeds the live monitor that the front-ends read. The tick runs beside the
//! requests, never on their path; stopping it hands the sampler back.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use order_server::contract::OrderType;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::RunConfig;
use crate::live::Live;
use crate::recorder::Recorder;
use crate::sampler::Sampler;
use crate::schedule::Plan;

/// Seconds between ticks.
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Progress {
    task: JoinHandle<Option<Sampler>>,
    stop: tokio::sync::oneshot::Sender<()>,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn start(
        cfg: &RunConfig,
        recorder: Arc<Recorder>,
        start: Instant,
        live: Option<Arc<Live>>,
    ) -> Self {
        let bar = (cfg.progress && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        });
        let plan = cfg.plan.clone();
        let sampler = cfg
            .series
            .then(|| Sampler::new(plan.clone(), TICK.as_secs_f64()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(tick(
            plan,
            recorder,
            start,
            bar.clone(),
            sampler,
            live,
            stopped,
        ));
        Progress { task, stop, bar }
    }

    /// Stops the tick and waits for it (a tick under way finishes first): the series'
    /// sampler, if the run keeps one, for [`Sampler::finish`] with the recorder's final
    /// numbers, which no tick can then move.
    pub async fn stop(self) -> Option<Sampler> {
        let _ = self.stop.send(());
        let sampler = self.task.await.ok().flatten();
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
        sampler
    }
}

async fn tick(
    plan: Plan,
    recorder: Arc<Recorder>,
    start: Instant,
    bar: Option<ProgressBar>,
    mut sampler: Option<Sampler>,
    live: Option<Arc<Live>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) -> Option<Sampler> {
    let mut plan = plan;
    let mut seen = 0u64;
    // The first tick a whole interval after the start, not at once.
    let mut every = tokio::time::interval_at(start + TICK, TICK);
    // A late tick (a busy runtime) is not made up with a burst: the next interval is longer.
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_done = 0u64;
    let mut last_at = Instant::now();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = &mut stopped => return sampler,
        }
        let t = start.elapsed().as_secs_f64();
        if let Some(l) = &live {
            let v = l.version();
            if v != seen {
                (plan, seen) = (l.plan(), v);
                if let Some(s) = &mut sampler {
                    s.replan(plan.clone());
                }
            }
        }
        let mut target = 0.0;
        for o in OrderType::ALL {
            let r = plan.rate(t, o);
            target += r;
            recorder.set_target_rate(o, r);
        }
        if sampler.is_none() && bar.is_none() && live.is_none() {
            continue;
        }
        let windows = recorder.take_window();
        if let Some(s) = &mut sampler {
            s.tick(t, &windows);
        }
        if let Some(bar) = &bar {
            let (done, message) = line(&windows, target, recorder.in_flight(), last_done, last_at);
            (last_done, last_at) = (done, Instant::now());
            bar.set_message(message);
            bar.tick();
        }
        if let Some(l) = &live {
            let shards = f64::from(plan.shard.1.max(1));
            let asked = OrderType::ALL.map(|o| plan.rate(t, o) * shards);
            let in_flight = recorder.in_flight();
            l.monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(t, asked, windows, in_flight);
            l.tick();
        }
    }
}

/// The progress line: answers so far and the message.
fn line(
    windows: &[(crate::recorder::Counts, crate::recorder::Window); 2],
    target: f64,
    in_flight: u64,
    last_done: u64,
    last_at: Instant,
) -> (u64, String) {
    {
        let [(food, food_window), (clothing, clothing_window)] = windows;
        let done = food.completed() + clothing.completed();
        let ok = food.ok() + clothing.ok();
        let late = food.late + clothing.late;
        let mut window = food_window.corrected.clone();
        let _ = window.add(&clothing_window.corrected);
        let rate = (done - last_done) as f64 / last_at.elapsed().as_secs_f64().max(1e-3);
        let errors = done - ok;
        let p99 = if window.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1} ms", window.value_at_quantile(0.99) as f64 / 1000.0)
        };
        let message = format!(
            "{rate:>8.1}/s (target {target:.1}/s)  in flight {in_flight:>4}  errors {errors} ({:.2}%)  p99 {p99}  late {}",
            if done > 0 { 100.0 * errors as f64 / done as f64 } else { 0.0 },
            late,
        );
        (done, message)
    }
}
