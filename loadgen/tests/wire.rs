//! What the load generator's own HTTP/1.1 client (the plain-http hot path) puts on the wire and
//! how it handles connections, checked against a raw TCP server that records every request
//! head: Host, User-Agent and extra headers, a base path, IPv6 loopback, and a server that
//! closes each kept-alive connection after one answer (without saying so).

use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

use loadgen::RunConfig;
use tokio::net::TcpListener;

/// Serves `200 {}` to every request; with `one_per_connection` it closes each connection after
/// its first answer without saying so (no `Connection: close`), as a server with a short idle
/// timeout does. Returns the recorded request heads, lower-cased.
fn raw_server(listener: TcpListener, one_per_connection: bool) -> Arc<Mutex<Vec<String>>> {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    let answer =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    support::serve_raw(
        listener,
        answer,
        Duration::ZERO,
        one_per_connection,
        move |head| {
            seen.lock()
                .expect("lock")
                .push(String::from_utf8_lossy(&head).to_lowercase());
        },
    );
    heads
}

async fn run(cfg: RunConfig) -> loadgen::Report {
    loadgen::run(cfg, std::future::pending())
        .await
        .expect("run")
}

fn config(target: String, seconds: f64) -> RunConfig {
    let mut cfg = RunConfig::constant(Some(target), 40.0, 20.0);
    cfg.duration = Some(Duration::from_secs_f64(seconds));
    cfg
}

#[tokio::test]
async fn request_heads_carry_host_user_agent_extra_headers_and_the_base_path() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = raw_server(listener, false);
    let mut cfg = config(format!("http://{addr}/shop"), 0.5);
    cfg.client.headers = vec![
        ("X-Tenant".into(), "blue".into()),
        ("Authorization".into(), "Bearer t0ken".into()),
    ];
    let report = run(cfg).await;
    assert_eq!(report.total.ok, report.total.sent, "every order answered");
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len() as u64, report.total.sent);
    let (mut food, mut clothing) = (0, 0);
    for h in &heads {
        let first = h.lines().next().unwrap_or_default();
        match first {
            "get /shop/makefoodorder http/1.1" => food += 1,
            "get /shop/makeclothingorder http/1.1" => clothing += 1,
            other => panic!("unexpected request line {other:?}"),
        }
        assert_eq!(h.matches("\r\nhost: ").count(), 1, "{h}");
        assert!(h.contains(&format!("\r\nhost: {addr}\r\n")), "{h}");
        assert!(h.contains("\r\nuser-agent: order-metrics-loadgen/"), "{h}");
        assert!(h.contains("\r\nx-tenant: blue\r\n"), "{h}");
        assert!(h.contains("\r\nauthorization: bearer t0ken\r\n"), "{h}");
    }
    assert_eq!(food, report.food.sent);
    assert_eq!(clothing, report.clothing.sent);
}

#[tokio::test]
async fn a_host_header_given_by_the_user_replaces_the_default() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = raw_server(listener, false);
    let mut cfg = config(format!("http://{addr}"), 0.2);
    cfg.client.headers = vec![("Host".into(), "orders.example".into())];
    run(cfg).await;
    let heads = heads.lock().expect("lock").clone();
    assert!(!heads.is_empty());
    for h in &heads {
        assert_eq!(h.matches("\r\nhost: ").count(), 1, "{h}");
        assert!(h.contains("\r\nhost: orders.example\r\n"), "{h}");
    }
}

#[tokio::test]
async fn connections_the_server_closed_between_requests_are_not_reused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = raw_server(listener, true);
    let report = run(config(format!("http://{addr}"), 1.0)).await;
    assert!(report.total.sent >= 55, "{}", report.total.sent);
    assert_eq!(
        report.total.ok, report.total.sent,
        "no order goes out on a kept-alive connection the server had already closed"
    );
    assert_eq!(heads.lock().expect("lock").len() as u64, report.total.sent);
}

#[tokio::test]
async fn an_ipv6_loopback_target_works() {
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    };
    let addr = listener.local_addr().expect("addr");
    let heads = raw_server(listener, false);
    let report = run(config(format!("http://{addr}"), 0.3)).await;
    assert!(report.total.sent > 0);
    assert_eq!(report.total.ok, report.total.sent);
    let heads = heads.lock().expect("lock").clone();
    assert!(
        heads[0].contains(&format!("\r\nhost: {addr}\r\n")),
        "{}",
        heads[0]
    );
}
