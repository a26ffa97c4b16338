//! Answers `/metrics` without the exporter's render on the request path when it can: the
//! scrape cache learns a scraper's interval (two gaps in a row within 5 % of each other) and
//! renders just before the next scrape is due, so a periodic scraper such as Prometheus gets
//! text at most `max_age` old at once. That render is for that one scrape only: the first
//! scrapes, irregular ones (a person with curl, a test reading its own writes), or a scrape
//! that finds the render older than `max_age` get a render on the spot, as without the cache;
//! scrapes that arrive while such a render runs share it (render.rs), so their values may be
//! up to one render older than their request.
//! The render runs as often as before, once per scrape; it only runs earlier. At 10,000 series
//! the exporter's render takes about 13 ms here, and no setting of the exporter brings it under
//! 5 ms (BENCHMARKS.md).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::{AbortHandle, JoinError};
use tokio::time::Instant;

use crate::render::{RenderError, SharedRender};

/// The shortest head start a pre-render gets on the scrape it is for.
const MIN_LEAD: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub struct ScrapeCache {
    max_age: Duration,
    state: Mutex<State>,
    /// Renders on the spot, shared by the scrapes that arrive while one runs.
    now: SharedRender,
}

#[derive(Debug, Default)]
struct State {
    /// The render made ahead for the next scrape, and when it started (the moment its values
    /// are from).
    ahead: Option<(Instant, Bytes)>,
    last_scrape: Option<Instant>,
    last_gap: Option<Duration>,
    /// The scrape interval, once two gaps in a row agree.
    interval: Option<Duration>,
    /// How long the last render took.
    cost: Duration,
    pending: Option<AbortHandle>,
    stats: Stats,
}

/// How scrapes were answered (for tests and the benchmark).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Answered with a render made ahead of time.
    pub cached: u64,
    /// Answered with a render made on the spot.
    pub fresh: u64,
    /// Renders made ahead of time.
    pub ahead: u64,
}

impl ScrapeCache {
    /// `max_age` zero switches the cache off: every scrape renders.
    pub fn new(max_age: Duration) -> Arc<Self> {
        Arc::new(ScrapeCache {
            max_age,
            state: Mutex::new(State::default()),
            now: SharedRender::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    /// Answers one scrape. `render` runs on the blocking pool, now or ahead of the next
    /// scrape; it returns `None` when what it renders is gone (the server shut down).
    pub async fn scrape<F>(self: &Arc<Self>, render: F) -> Result<Bytes, RenderError>
    where
        F: Fn() -> Option<String> + Clone + Send + Sync + 'static,
    {
        let now = Instant::now();
        let cached = {
            let mut s = self.lock();
            s.learn(now);
            match s.ahead.take() {
                Some((at, text)) if now - at <= self.max_age => {
                    s.stats.cached += 1;
                    Some(text)
                }
                _ => None,
            }
        };
        let text = match cached {
            Some(t) => t,
            None => {
                let (started, text) = self.now.render(render.clone()).await?;
                let mut s = self.lock();
                s.stats.fresh += 1;
                s.cost = started.elapsed();
                text
            }
        };
        self.plan(render);
        Ok(text)
    }

    /// Runs `render` on the blocking pool; returns when it started and the text.
    async fn render<F>(render: F) -> Result<(Instant, Bytes), JoinError>
    where
        F: Fn() -> Option<String> + Send + 'static,
    {
        let started = Instant::now();
        let text = tokio::task::spawn_blocking(render).await?;
        Ok((started, Bytes::from(text.unwrap_or_default())))
    }

    /// Schedules a render just before the next scrape is due, replacing any earlier plan.
    fn plan<F>(self: &Arc<Self>, render: F)
    where
        F: Fn() -> Option<String> + Clone + Send + Sync + 'static,
    {
        let mut s = self.lock();
        if let Some(p) = s.pending.take() {
            p.abort();
        }
        let (Some(interval), Some(last)) = (s.interval, s.last_scrape) else {
            return;
        };
        // Twice the last render's time ahead, so a slower render still finishes in time, but
        // never so early that the text would be too old when the scrape comes.
        let lead = (s.cost * 2).max(MIN_LEAD);
        if self.max_age.is_zero() || lead * 2 > self.max_age || interval <= lead * 2 {
            return;
        }
        let at = last + interval - lead;
        let me: Weak<Self> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Ok((started, text)) = Self::render(render).await {
                if let Some(me) = me.upgrade() {
                    let mut s = me.lock();
                    s.cost = started.elapsed();
                    s.ahead = Some((started, text));
                    s.stats.ahead += 1;
                }
            }
        });
        s.pending = Some(task.abort_handle());
    }
}

impl State {
    fn learn(&mut self, now: Instant) {
        if let Some(last) = self.last_scrape {
            let gap = now - last;
            self.interval = match self.last_gap {
                Some(prev) if close(prev, gap) => Some(gap),
                _ => None,
            };
            self.last_gap = Some(gap);
        }
        self.last_scrape = Some(now);
    }
}

/// Within 5 % of each other.
fn close(a: Duration, b: Duration) -> bool {
    let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
    (a - b).abs() <= 0.05 * a.max(b)
}

impl Drop for ScrapeCache {
    fn drop(&mut self) {
        if let Some(p) = self.lock().pending.take() {
            p.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A render that says which render it was and takes `cost` of (paused) time.
    fn counter() -> (
        Arc<AtomicU64>,
        impl Fn() -> Option<String> + Clone + Send + Sync,
    ) {
        let n = Arc::new(AtomicU64::new(0));
        let m = Arc::clone(&n);
        (n, move || {
            Some(format!("render {}", m.fetch_add(1, Ordering::SeqCst) + 1))
        })
    }

    async fn scrape_at(
        c: &Arc<ScrapeCache>,
        at: Instant,
        r: impl Fn() -> Option<String> + Clone + Send + Sync + 'static,
    ) -> String {
        tokio::time::sleep_until(at).await;
        let text = c.scrape(r).await.expect("render");
        String::from_utf8(text.to_vec()).expect("utf-8")
    }

    #[tokio::test(start_paused = true)]
    async fn a_periodic_scraper_gets_text_rendered_just_before_it_asks() {
        let c = ScrapeCache::new(Duration::from_millis(250));
        let (renders, r) = counter();
        let t0 = Instant::now();
        let every = Duration::from_secs(5);
        let mut answers = Vec::new();
        for i in 0..6u32 {
            answers.push(scrape_at(&c, t0 + every * i, r.clone()).await);
        }
        let s = c.stats();
        // Scrapes 1-3 teach the interval (two equal gaps); 4, 5 and 6 find a render ready.
        assert_eq!((s.fresh, s.cached), (3, 3), "{s:?}");
        assert_eq!(s.ahead, 3, "{s:?}");
        // Still one render per scrape, plus the one planned for a seventh.
        tokio::time::sleep(every).await;
        assert_eq!(renders.load(Ordering::SeqCst), 7);
        // Every answer is a different render: nothing was served twice.
        let mut unique = answers.clone();
        unique.dedup();
        assert_eq!(unique.len(), answers.len(), "{answers:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn irregular_scrapes_always_render_on_the_spot() {
        let c = ScrapeCache::new(Duration::from_millis(250));
        let (renders, r) = counter();
        let t0 = Instant::now();
        for ms in [0u64, 1000, 3000, 3500, 7000, 7400, 9000] {
            scrape_at(&c, t0 + Duration::from_millis(ms), r.clone()).await;
        }
        let s = c.stats();
        assert_eq!((s.fresh, s.cached, s.ahead), (7, 0, 0), "{s:?}");
        assert_eq!(renders.load(Ordering::SeqCst), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scrape_right_after_another_sees_the_latest_values() {
        let c = ScrapeCache::new(Duration::from_millis(250));
        let (renders, r) = counter();
        let t0 = Instant::now();
        let mut last = String::new();
        for i in 0..5u32 {
            last = scrape_at(&c, t0 + Duration::from_secs(1) * i, r.clone()).await;
        }
        assert_eq!(
            c.stats().cached,
            2,
            "steady at 1 s: the scrapes at 3 s and 4 s were cached"
        );
        // Someone asks 10 ms after the scraper: a render of their own, not the scraper's.
        let after = scrape_at(&c, t0 + Duration::from_millis(4010), r.clone()).await;
        assert_ne!(
            last, after,
            "a render made ahead is served once, never again"
        );
        assert_eq!(c.stats().fresh, 4);
        assert_eq!(renders.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_text_older_than_max_age_is_never_served() {
        let max_age = Duration::from_millis(250);
        let c = ScrapeCache::new(max_age);
        let (_, r) = counter();
        let t0 = Instant::now();
        for i in 0..3u32 {
            scrape_at(&c, t0 + Duration::from_secs(2) * i, r.clone()).await;
        }
        // The pre-render for t0 + 6 s happens at about 5.98 s; a scrape 1 s late must not
        // get it.
        let late = scrape_at(&c, t0 + Duration::from_secs(7), r.clone()).await;
        let s = c.stats();
        assert_eq!((s.cached, s.ahead), (0, 1), "{s:?}");
        assert_eq!(late, "render 5", "a fresh render, after the one made ahead");
    }

    #[tokio::test(start_paused = true)]
    async fn max_age_zero_switches_the_cache_off() {
        let c = ScrapeCache::new(Duration::ZERO);
        let (renders, r) = counter();
        let t0 = Instant::now();
        for i in 0..5u32 {
            scrape_at(&c, t0 + Duration::from_secs(1) * i, r.clone()).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(renders.load(Ordering::SeqCst), 5);
        assert_eq!(c.stats().cached, 0);
    }
}
