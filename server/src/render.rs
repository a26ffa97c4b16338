//! One render at a time, shared by every scrape that asks meanwhile: the first scrape renders
//! on the blocking pool, the others wait for that render and get the same bytes (a reference
//! count, not a copy). A flood of concurrent scrapes then costs one thread and one body, not
//! one of each per scrape. A scrape that joins gets values at most one render old.

use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

/// Why a render gave no text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the render failed: {0}")]
pub struct RenderError(String);

type Outcome = Option<Result<(Instant, Bytes), RenderError>>;

/// Coalesces concurrent renders.
#[derive(Debug, Default)]
pub struct SharedRender {
    current: Mutex<Option<watch::Receiver<Outcome>>>,
}

enum Role {
    Lead(watch::Sender<Outcome>),
    Follow(watch::Receiver<Outcome>),
}

impl SharedRender {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<watch::Receiver<Outcome>>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The text of a render that started no earlier than the one in progress when this was
    /// called, and when that render started. `render` runs only if no render is in progress;
    /// it returns `None` when what it renders is gone (an empty text then).
    pub async fn render<F>(&self, render: F) -> Result<(Instant, Bytes), RenderError>
    where
        F: FnOnce() -> Option<String> + Send + 'static,
    {
        let mut render = Some(render);
        loop {
            let role = {
                let mut current = self.lock();
                match current.as_ref() {
                    Some(rx) => Role::Follow(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        *current = Some(rx);
                        Role::Lead(tx)
                    }
                }
            };
            match role {
                Role::Follow(mut rx) => {
                    if let Ok(done) = rx.wait_for(Option::is_some).await {
                        if let Some(outcome) = done.clone() {
                            return outcome;
                        }
                    }
                    // The leading scrape was cancelled before its render ended: lead now.
                }
                Role::Lead(tx) => {
                    let _clear = Clear(self);
                    let Some(f) = render.take() else {
                        return Err(RenderError("render already used".into()));
                    };
                    let started = Instant::now();
                    let outcome = tokio::task::spawn_blocking(f)
                        .await
                        .map(|text| (started, Bytes::from(text.unwrap_or_default())))
                        .map_err(|e| RenderError(e.to_string()));
                    tx.send_replace(Some(outcome.clone()));
                    return outcome;
                }
            }
        }
    }
}

/// Ends the leader's turn, even when its scrape is cancelled half-way.
struct Clear<'a>(&'a SharedRender);

impl Drop for Clear<'_> {
    fn drop(&mut self) {
        *self.0.lock() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_scrapes_share_one_render_and_one_body() {
        let shared = Arc::new(SharedRender::new());
        let renders = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (shared, renders) = (Arc::clone(&shared), Arc::clone(&renders));
            tasks.push(tokio::spawn(async move {
                shared
                    .render(move || {
                        renders.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Some("text".into())
                    })
                    .await
                    .expect("render")
                    .1
            }));
        }
        let mut bodies = Vec::new();
        for t in tasks {
            bodies.push(t.await.expect("task"));
        }
        // All 100 started within the first render's 200 ms: one or two renders in all.
        assert!(renders.load(Ordering::SeqCst) <= 2, "{renders:?}");
        assert!(bodies.iter().all(|b| b == "text"));
        // One body: every scrape got the same bytes, not a copy.
        let first = bodies[0].as_ptr();
        let shared_bodies = bodies.iter().filter(|b| b.as_ptr() == first).count();
        assert!(
            shared_bodies >= 50,
            "{shared_bodies} of 100 share the first body"
        );
        // The next scrape after they finished renders anew.
        let before = renders.load(Ordering::SeqCst);
        let r = Arc::clone(&renders);
        let (_, text) = shared
            .render(move || {
                r.fetch_add(1, Ordering::SeqCst);
                Some("later".into())
            })
            .await
            .expect("render");
        assert_eq!(text, "later");
        assert_eq!(renders.load(Ordering::SeqCst), before + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_scrape_takes_over_from_a_cancelled_leader() {
        let shared = Arc::new(SharedRender::new());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let leader = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                shared
                    .render(move || {
                        let _ = started_tx.send(());
                        std::thread::sleep(Duration::from_millis(300));
                        Some("first".into())
                    })
                    .await
            })
        };
        // The leader's render is running; a second scrape joins it.
        tokio::task::spawn_blocking(move || started_rx.recv())
            .await
            .expect("join")
            .expect("the leader's render started");
        let follower = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move { shared.render(|| Some("second".into())).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        let (_, text) = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("the follower is not stuck")
            .expect("task")
            .expect("render");
        assert_eq!(text, "second", "the follower rendered itself");
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over_to_the_next_scrape() {
        let shared = Arc::new(SharedRender::new());
        let leader = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                shared
                    .render(|| {
                        std::thread::sleep(Duration::from_millis(300));
                        Some("first".into())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        let _ = leader.await;
        let (_, text) = tokio::time::timeout(
            Duration::from_secs(5),
            shared.render(|| Some("second".into())),
        )
        .await
        .expect("not stuck behind a cancelled leader")
        .expect("render");
        assert_eq!(text, "second");
    }
}
