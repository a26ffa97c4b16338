//! The full-screen terminal view, a front-end of the run's live state ([`crate::live`]): on a
//! thread of its own it reads snapshots (the monitor's last minute, the plan, the events) and
//! draws them with ratatui at most ten times a second, and its keys send changes like any
//! other front-end: `q` or Ctrl-C stops the run (drain, then the report; a second Ctrl-C
//! exits at once), `+` and `-` change both rates by 10 %. The terminal is restored on every
//! way out: the end of the run, a signal (which ends the run), an error (a guard's drop) and a
//! panic (ratatui's hook).

pub mod logs;
mod snapshot;
mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

pub use logs::LogBuffer;

use crate::change::{Change, Source};
use crate::live::Live;
use crate::threshold::Thresholds;

/// The most redraws a second, whatever happens.
const MIN_REDRAW: Duration = Duration::from_millis(100);
/// Redraws without news: the clock moves, the figures once a second.
const REDRAW: Duration = Duration::from_millis(250);
/// How long a wait for a key lasts before the stop flag is looked at again.
const POLL: Duration = Duration::from_millis(50);
/// One key press changes both rates by this factor (or its inverse).
const STEP: f64 = 1.1;

/// What the view shows besides the live state.
#[derive(Debug, Clone)]
pub struct TuiInfo {
    pub target: String,
    pub thresholds: Thresholds,
    /// The highest total rate a key may ask for (`--max-rate`).
    pub max_rate: f64,
    /// The log lines the view shows (the logger writes there while the view is up).
    pub logs: LogBuffer,
}

/// The running view; [`Tui::stop`] (or a drop) ends it and restores the terminal.
#[derive(Debug)]
pub struct Tui {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tui {
    /// Takes over the terminal and shows `live` until stopped.
    pub fn start(live: Arc<Live>, info: TuiInfo) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("loadgen-tui".into())
            .spawn(move || {
                if let Err(e) = show(&live, &info, &flag) {
                    tracing::warn!(error = %e, "the terminal view failed; the run goes on");
                }
            })
            .ok();
        Tui { stop, thread }
    }

    /// Ends the view and gives the terminal back.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Restores the terminal when the view ends, however it ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn show(live: &Live, info: &TuiInfo, stop: &AtomicBool) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let _restore = Restore;
    let mut snap = snapshot::Snapshot::default();
    let mut last_tick = u64::MAX;
    let mut drawn: Option<Instant> = None;
    let mut news = true;
    let mut interrupts = 0;
    while !stop.load(Ordering::Acquire) {
        if event::poll(POLL)? {
            match event::read()? {
                Event::Key(k) if k.kind == KeyEventKind::Press => {
                    match (k.code, k.modifiers.contains(KeyModifiers::CONTROL)) {
                        (KeyCode::Char('c'), true) => {
                            interrupts += 1;
                            if interrupts >= 2 {
                                // As a second Ctrl-C does without the view: at once, no report.
                                ratatui::restore();
                                std::process::exit(i32::from(crate::exit::ABORTED));
                            }
                            live.request_stop(Source::Tui);
                        }
                        (KeyCode::Char('q'), _) => live.request_stop(Source::Tui),
                        (KeyCode::Char('+' | '='), _) => scale(live, info.max_rate, STEP),
                        (KeyCode::Char('-' | '_'), _) => scale(live, info.max_rate, 1.0 / STEP),
                        _ => {}
                    }
                    news = true;
                }
                Event::Resize(..) => news = true,
                _ => {}
            }
        }
        let since = drawn.map_or(Duration::MAX, |t| t.elapsed());
        if since < MIN_REDRAW || !(news || since >= REDRAW) {
            continue;
        }
        let tick = live.ticks();
        snap.refresh(live, info, tick != last_tick);
        last_tick = tick;
        terminal.draw(|f| view::draw(f, &snap))?;
        drawn = Some(Instant::now());
        news = false;
    }
    Ok(())
}

/// Both rates times `factor`, the total held to `max_rate`: a change with source `tui`.
fn scale(live: &Live, max_rate: f64, factor: f64) {
    let now = live.rates_at(live.elapsed());
    let total: f64 = now.iter().sum();
    if total <= 0.0 {
        return;
    }
    let cap = (max_rate / (total * factor)).min(1.0);
    let rates = now.map(|r| Some(r * factor * cap));
    if let Err(e) = live.submit(Change::Rates(rates), Source::Tui) {
        tracing::warn!(error = %e, "the rate change was not taken");
    }
}
