//! How long a steady scraper waits for `/metrics` at a given series count: every scrape
//! renders (through the server's shared render on the blocking pool, as `/metrics` does). The
//! scraper asks at a fixed interval, like Prometheus; each answer time is measured from the ask
//! to the text in hand. Prints one JSON object: median, p90 and max milliseconds.
//!
//!     scrape-timing SERIES SCRAPES INTERVAL_MS

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use order_metrics_bench::recorder_with_series;
use order_server::render::SharedRender;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, series, scrapes, interval] => match (
            series.parse::<usize>(),
            scrapes.parse::<usize>(),
            interval.parse::<u64>(),
        ) {
            (Ok(a), Ok(b), Ok(c)) if a > 0 && b >= 4 && c > 0 => Some((a, b, c)),
            _ => None,
        },
        _ => None,
    };
    let Some((series, scrapes, interval_ms)) = parsed else {
        eprintln!("usage: scrape-timing SERIES SCRAPES INTERVAL_MS (SCRAPES at least 4)");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let recorder = Arc::new(recorder_with_series(series));
    let interval = Duration::from_millis(interval_ms);
    let result = runtime.block_on(scraper(recorder, scrapes, interval));
    match result {
        Ok(times) => {
            println!(
                "{{\"series\":{series},\"scrapes\":{scrapes},\"interval_ms\":{interval_ms},\"fresh\":{}}}",
                summary(times)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: a render failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One steady scraper; the answer times of every scrape after the first (which warms up).
async fn scraper(
    recorder: Arc<metrics_exporter_prometheus::PrometheusRecorder>,
    scrapes: usize,
    interval: Duration,
) -> Result<Vec<f64>, order_server::render::RenderError> {
    let renders = SharedRender::new();
    let mut times = Vec::new();
    let start = tokio::time::Instant::now();
    for i in 0..scrapes {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let r = Arc::clone(&recorder);
        let asked = Instant::now();
        let (_, text) = renders.render(move || Some(r.handle().render())).await?;
        let took = asked.elapsed().as_secs_f64() * 1000.0;
        if i >= 1 && !text.is_empty() {
            times.push(took);
        }
    }
    Ok(times)
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "{{\"median_ms\":{:.3},\"p90_ms\":{:.3},\"max_ms\":{:.3},\"n\":{}}}",
        at(0.5),
        at(0.9),
        at(1.0),
        v.len()
    )
}
