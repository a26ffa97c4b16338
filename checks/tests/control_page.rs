//! The load generator's live control page in a real browser: Debian's Chromium driven over
//! WebDriver (chromedriver) at phone width, against the load generator steering the real order
//! server on loopback. The test types a rate and applies it, toggles a fault, and sees the
//! server's counters and the page's charts move; the page fetches nothing from another origin
//! and needs no sideways scrolling. With `CONTROL_PAGE_SCREENSHOT=path` it also saves the
//! README's picture of the page.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use clap::Parser;
use order_metrics_checks::webdriver::Session;
use order_server::contract as c;
use order_server::exposition::Exposition;
use order_server::test_kit::{quiet_config, TestServer};
use serde_json::Value;

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    l.local_addr().expect("addr")
}

async fn processed(server: &TestServer, order_type: &str, status: &str) -> f64 {
    let text = server.scrape_text().await;
    let mut labels = vec![("order_type", order_type)];
    if !status.is_empty() {
        labels.push(("status", status));
    }
    Exposition::parse(&text).map_or(0.0, |m| m.sum(c::ORDERS_PROCESSED, &labels))
}

/// Waits until `check` returns `Some`, polling every 200 ms; panics with `what` after 20 s.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Points drawn by the page's chart series whose class contains `name`, summed.
const POINTS: &str = r#"
const out = {};
for (const p of document.querySelectorAll("svg path.series")) {
  const name = p.getAttribute("class").replace("series ", "");
  out[name] = (p.getAttribute("d").match(/[ML]/g) || []).length;
}
return out;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_chromedriver,
    ignore = "chromium or chromedriver not on PATH: apt-get install chromium chromium-driver"
)]
async fn the_control_page_steers_the_load_in_chromium() {
    let Some(browser) = Session::start(390, 1400).await.expect("chromedriver") else {
        return;
    };
    let server = TestServer::start_with_admin(quiet_config(), true).await;
    let control = free_addr();
    let admin = server.admin_url().replace("/admin/faults", "/");
    let cli = loadgen::Cli::try_parse_from([
        "loadgen".to_string(),
        "--target".into(),
        format!("http://{}", server.addr),
        "--admin-url".into(),
        admin,
        "--food-rate".into(),
        "20".into(),
        "--clothing-rate".into(),
        "5".into(),
        "--duration".into(),
        "90s".into(),
        "--control-addr".into(),
        control.to_string(),
        "--no-progress".into(),
    ])
    .expect("loadgen flags");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(loadgen::run(cli.into_config().expect("config"), async {
        let _ = stopped.await;
    }));
    let origin = format!("http://{control}");
    // The page's first state arrives once the API listens.
    until("the control API", || async {
        reqwest::get(format!("{origin}/api/v1/state")).await.ok()
    })
    .await;
    browser.open(&format!("{origin}/")).await.expect("open");
    until("the page's first state", || async {
        let s = browser
            .script("return document.getElementById('status').textContent")
            .await
            .ok()?;
        s.as_str()
            .is_some_and(|t| t.starts_with("running"))
            .then_some(())
    })
    .await;
    // A few seconds of the first rate on the charts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = browser.script(POINTS).await.expect("points");
    assert!(
        before["achieved-food"].as_u64().unwrap_or(0) >= 2,
        "{before}"
    );

    // Type 120/s for food and apply it: the server sees it.
    browser
        .type_into("#rate-food", "120")
        .await
        .expect("type the rate");
    browser.click("#apply-rates").await.expect("apply");
    until("the page shows the new rate", || async {
        let v = browser
            .script("return document.querySelector('#figures tr:nth-child(2) td:nth-child(2)').textContent")
            .await
            .ok()?;
        (v.as_str() == Some("120.0")).then_some(())
    })
    .await;
    let n0 = processed(&server, "food", "").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rate = (processed(&server, "food", "").await - n0) / 3.0;
    assert!(
        (100.0..=140.0).contains(&rate),
        "the server saw {rate}/s food orders after the page asked for 120/s"
    );

    // Toggle a fault: errors on food orders (the page's defaults, 30 %).
    let failed = processed(&server, "food", "failed").await;
    browser.click("#fault-errors").await.expect("errors");
    until("the server's failures", || async {
        (processed(&server, "food", "failed").await >= failed + 20.0).then_some(())
    })
    .await;
    until("the page lists the fault", || async {
        let v = browser
            .script("return document.getElementById('faults').textContent")
            .await
            .ok()?;
        v.as_str()
            .is_some_and(|t| t.contains("errors"))
            .then_some(())
    })
    .await;

    // The charts moved: more points, and the errors chart has food errors now.
    let after = until("the charts to grow", || async {
        let v = browser.script(POINTS).await.ok()?;
        let grew = v["achieved-food"].as_u64()? > before["achieved-food"].as_u64()?;
        grew.then_some(v)
    })
    .await;
    assert!(after["errors-food"].as_u64().unwrap_or(0) > 0, "{after}");
    let peak = browser
        .script(
            "const p = document.querySelector('#chart-rate path.achieved-food').getAttribute('d'); \
             return Math.min(...p.split(/[ML]/).filter(Boolean).map((xy) => +xy.split(',')[1]));",
        )
        .await
        .expect("the rate line's highest point");
    let low = browser
        .script(
            "const p = document.querySelector('#chart-rate path.achieved-food').getAttribute('d'); \
             return Math.max(...p.split(/[ML]/).filter(Boolean).map((xy) => +xy.split(',')[1]));",
        )
        .await
        .expect("the rate line's lowest point");
    assert!(
        low.as_f64().unwrap_or(0.0) - peak.as_f64().unwrap_or(0.0) > 40.0,
        "the achieved line climbed with the rate: y from {low} to {peak}"
    );
    let events = browser
        .script("return document.getElementById('event-rows').textContent")
        .await
        .expect("events");
    let events = events.as_str().unwrap_or("");
    assert!(
        events.contains("rates: food 20/s → 120/s") && events.contains("page"),
        "{events}"
    );
    assert!(events.contains("fault:"), "{events}");

    // Nothing from another origin, and no sideways scrolling at phone width.
    let fetched = browser
        .script("return performance.getEntriesByType('resource').map((e) => e.name)")
        .await
        .expect("resources");
    let fetched: Vec<&str> = fetched
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!fetched.is_empty(), "the page's own calls are listed");
    for url in &fetched {
        assert!(url.starts_with(&origin), "fetched from elsewhere: {url}");
    }
    let overflow = browser
        .script("return document.documentElement.scrollWidth - window.innerWidth")
        .await
        .expect("widths");
    let widest = browser
        .script(
            "return [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth).map((e) => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 10)",
        )
        .await
        .expect("elements");
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "sideways scroll at 390 px: {overflow} ({widest})"
    );
    if let Some(path) = std::env::var_os("CONTROL_PAGE_SCREENSHOT") {
        let png = browser.screenshot().await.expect("screenshot");
        std::fs::write(path, png).expect("write the screenshot");
    }

    let _ = stop.send(());
    let report = run.await.expect("joined").expect("the run");
    let sources: Vec<&str> = report.events.iter().map(|e| e.source.as_str()).collect();
    assert!(sources.iter().all(|s| *s == "page"), "{sources:?}");
}
