//! Once a second: the target-rate gauge, and on a terminal a live progress line (rate achieved
//! and scheduled, in flight, errors, p99 of the last interval). Nothing is drawn when standard
//! error is not a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use order_server::contract::OrderType;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::RunConfig;
use crate::recorder::Recorder;
use crate::schedule::Plan;

#[derive(Debug)]
pub struct Progress {
    task: JoinHandle<()>,
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
        let task = tokio::spawn(tick(plan, recorder, start, bar.clone()));
        Progress { task, bar }
    }

    pub fn finish(self) {
        self.task.abort();
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

async fn tick(plan: Plan, recorder: Arc<Recorder>, start: Instant, bar: Option<ProgressBar>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut last_done = 0u64;
    let mut last_at = Instant::now();
    loop {
        every.tick().await;
        let t = start.elapsed().as_secs_f64();
        let mut target = 0.0;
        for o in OrderType::ALL {
            let r = plan.rate(t, o);
            target += r;
            recorder.set_target_rate(o, r);
        }
        let Some(bar) = &bar else { continue };
        let s = recorder.take_window();
        let mut total = s[0].clone();
        total.merge(&s[1]);
        let done = total.completed();
        let now = Instant::now();
        let rate = (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64().max(1e-3);
        (last_done, last_at) = (done, now);
        let errors = done - total.ok();
        let p99 = if total.window.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{:.1} ms",
                total.window.value_at_quantile(0.99) as f64 / 1000.0
            )
        };
        bar.set_message(format!(
            "{rate:>8.1}/s (target {target:.1}/s)  in flight {:>4}  errors {errors} ({:.2}%)  p99 {p99}  late {}",
            recorder.in_flight(),
            if done > 0 { 100.0 * errors as f64 / done as f64 } else { 0.0 },
            total.late,
        ));
        bar.tick();
    }
}
