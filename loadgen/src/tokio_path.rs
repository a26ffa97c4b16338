//! The tokio executor: carries out the dispatch core's steps with the reqwest client, for
//! https, `--http2`, and plain http off Linux. Each request runs in a task of its own, at
//! most `--max-in-flight` at once; a due request waits for a slot (and is sent late, which
//! the lag records) rather than being dropped. After the stop it waits for the requests in
//! flight, at most the drain time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::client::OrderClient;
use crate::dispatch::{Dispatch, Step, StopReason};
use crate::pacer::Pacer;
use crate::recorder::Recorder;

/// Stands in for the end of a run without one: far enough never to come.
const NEVER: Duration = Duration::from_secs(30 * 365 * 86_400);

/// Runs the dispatch until it stops, calls `stopped` (before the drain, so nothing the run
/// drives outlives its schedule), then drains; why it stopped and how long it ran.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    dispatch: &mut Dispatch,
    client: &OrderClient,
    max_in_flight: usize,
    drain: Duration,
    recorder: &Arc<Recorder>,
    start: Instant,
    stop: impl Future<Output = ()>,
    stopped: impl FnOnce(),
) -> (StopReason, Duration) {
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut pacer = Pacer::new();
    // One timer for the end of the run, made once: a timer per wait for a slot would be a
    // registration per request at saturation.
    let end = dispatch.end().map_or(NEVER, Duration::from_secs_f64);
    let end = tokio::time::sleep_until(start + end);
    tokio::pin!(stop, end);

    let reason = loop {
        let now = start.elapsed().as_secs_f64();
        let due = match dispatch.next(now) {
            Step::Stop(reason) => break reason,
            Step::WaitUntil(at) => {
                // A live change wakes the wait: the next step applies it.
                let live = dispatch.live().cloned();
                let changed = async {
                    match &live {
                        Some(l) => l.changed().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = &mut stop => dispatch.interrupt(),
                    () = changed => {}
                    () = pacer.until(start + Duration::from_secs_f64(at)) => {}
                }
                continue;
            }
            Step::Send(due) => due,
        };
        if due.first {
            recorder.scheduled(due.t);
        }
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            // Every slot busy: the request stays held, and the next step decides (it is
            // offered again, or the run is over).
            Err(_) => tokio::select! {
                biased;
                () = &mut stop => {
                    dispatch.interrupt();
                    continue;
                }
                () = &mut end => continue,
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => {
                        dispatch.interrupt();
                        continue;
                    }
                },
            },
        };
        dispatch.sent();
        let at = start + Duration::from_secs_f64(due.at);
        let sent = Instant::now();
        recorder.sent(due.t, sent.saturating_duration_since(at));
        let client = client.clone();
        let rec = Arc::clone(recorder);
        tokio::spawn(async move {
            let class = client.send(due.t).await;
            let done = Instant::now();
            rec.completed(due.t, class, done - at, done - sent);
            drop(permit);
        });
    };
    let elapsed = start.elapsed();
    stopped();
    wait_for_in_flight(recorder, drain).await;
    (reason, elapsed)
}

/// Waits for requests in flight, at most `limit`.
async fn wait_for_in_flight(recorder: &Recorder, limit: Duration) {
    let deadline = Instant::now() + limit;
    while recorder.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = recorder.in_flight();
    if left > 0 {
        tracing::warn!(
            in_flight = left,
            "drain time ran out; these requests are reported as sent but not completed"
        );
    }
}
