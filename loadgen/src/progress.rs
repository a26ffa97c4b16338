//! The run's once-a-second tick: the target-rate gauge, the time series' sampler (when the run
//! keeps one), and on a terminal a live progress line (rate achieved and scheduled, in flight,
//! errors, p99 of the last interval). Nothing is drawn when standard error is not a terminal.
//! The tick runs beside the requests, never on their path; stopping it hands the sampler back.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use order_server::contract::OrderType;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::RunConfig;
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
    pub fn start(cfg: &RunConfig, recorder: Arc<Recorder>, start: Instant) -> Self {
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
        let task = tokio::spawn(tick(plan, recorder, start, bar.clone(), sampler, stopped));
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
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) -> Option<Sampler> {
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
        let mut target = 0.0;
        for o in OrderType::ALL {
            let r = plan.rate(t, o);
            target += r;
            recorder.set_target_rate(o, r);
        }
        if sampler.is_none() && bar.is_none() {
            continue;
        }
        let now = recorder.take_window();
        if let Some(s) = &mut sampler {
            s.tick(t, &now);
        }
        let Some(bar) = &bar else { continue };
        let [(food, food_window), (clothing, clothing_window)] = &now;
        let done = food.completed() + clothing.completed();
        let ok = food.ok() + clothing.ok();
        let late = food.late + clothing.late;
        let mut window = food_window.corrected.clone();
        let _ = window.add(&clothing_window.corrected);
        let now = Instant::now();
        let rate = (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64().max(1e-3);
        (last_done, last_at) = (done, now);
        let errors = done - ok;
        let p99 = if window.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1} ms", window.value_at_quantile(0.99) as f64 / 1000.0)
        };
        bar.set_message(format!(
            "{rate:>8.1}/s (target {target:.1}/s)  in flight {:>4}  errors {errors} ({:.2}%)  p99 {p99}  late {}",
            recorder.in_flight(),
            if done > 0 { 100.0 * errors as f64 / done as f64 } else { 0.0 },
            late,
        ));
        bar.tick();
    }
}
