//! What the READMEs promise about the order server, held to the server itself (issue 26): the
//! error answers they list, each with the status and the body they say (JSON from a handler,
//! empty from hyper); an environment variable for every flag of both commands; the
//! healthcheck's "any 2xx" in its help and its behaviour; and a build info that leaves an
//! unknown commit out.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use order_server::contract as c;
use order_server::test_kit::{backticked_flags, flags_without_env, readme, sentence};
use serde_json::json;
use support::{quiet_config, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Writes `bytes` on a fresh connection and reads the answer until the server closes it:
/// its status and its body.
async fn exchange(srv: &TestServer, bytes: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    // The server may answer before reading everything (a 431); that is fine.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The 3-digit statuses in backticks in `text`.
fn statuses(text: &str) -> BTreeSet<u16> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.len() == 3)
        .filter_map(|t| t.parse().ok())
        .collect()
}

/// The statuses each README says a handler answers in JSON, and those hyper answers empty.
fn promised(name: &str) -> (BTreeSet<u16>, BTreeSet<u16>) {
    let text = readme(name);
    let (json, empty) = match name {
        "README.md" => (
            "Every error a handler answers",
            "Two refusals come from hyper",
        ),
        _ => ("处理程序给出的所有错误", "有两种拒绝来自 hyper"),
    };
    (
        statuses(&sentence(&text, json)),
        statuses(&sentence(&text, empty)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_status_the_readmes_list_is_answered_as_they_say() {
    let mut cfg = quiet_config();
    cfg.body_timeout = Duration::from_millis(300);
    cfg.max_in_flight = 1;
    let srv = TestServer::start_with_admin(cfg, true).await;
    let mut answered_json = BTreeSet::new();
    let mut answered_empty = BTreeSet::new();
    let mut json_error = |(status, head, body): (u16, String, String), want: u16| {
        assert_eq!(status, want, "{head}{body}");
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{want}: body {body:?} is not JSON: {e}"));
        assert_eq!(v["success"], false, "{want}: {body}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
        answered_json.insert(status);
        head
    };

    json_error(
        exchange(
            &srv,
            b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await,
        404,
    );
    // A request line of 10 KiB is within the head limit: an unknown path like any other.
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(10 << 10)
    );
    json_error(exchange(&srv, long.as_bytes()).await, 404);
    let head = json_error(
        exchange(
            &srv,
            b"DELETE /makeFoodOrder HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await,
        405,
    );
    assert!(head.contains("\r\nallow: "), "{head}");
    let big = format!(
        "POST /makeFoodOrder HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
        70 << 10,
        "x".repeat(70 << 10)
    );
    json_error(exchange(&srv, big.as_bytes()).await, 413);
    // A body announced and never sent: 408 after --body-timeout.
    json_error(
        exchange(
            &srv,
            b"POST /makeFoodOrder HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n",
        )
        .await,
        408,
    );
    // Overloaded: the one slot held by a stalled order, the next order is shed.
    let r = srv
        .client
        .post(srv.admin_url())
        .json(&json!({"kind": "stall", "order_type": "food", "duration": "1h"}))
        .send()
        .await
        .expect("stall");
    assert_eq!(r.status(), 201);
    let held = {
        let (client, url) = (srv.client.clone(), srv.url("/makeFoodOrder"));
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while srv
        .scrape()
        .await
        .sum(c::ORDERS_RECEIVED, &[("order_type", "food")])
        < 1.0
    {
        assert!(Instant::now() < deadline, "the stalled order never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let head = json_error(
        exchange(
            &srv,
            b"GET /makeClothingOrder HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await,
        503,
    );
    assert!(head.contains("\r\nretry-after: "), "{head}");
    srv.client
        .delete(srv.admin_url())
        .send()
        .await
        .expect("clear");
    assert_eq!(held.await.expect("task").expect("answer"), 200);

    // hyper's own refusals: no handler, no body.
    let mut empty = |(status, head, body): (u16, String, String), want: u16| {
        assert_eq!(status, want, "{head}{body}");
        assert!(body.is_empty(), "{want}: {body:?}");
        answered_empty.insert(status);
    };
    empty(exchange(&srv, b"\x16\x03\x01garbage\r\n\r\n").await, 400);
    let header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(17 << 10)
    );
    empty(exchange(&srv, header.as_bytes()).await, 431);
    // A request line over the head limit is the same 431, not a 414.
    let line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20 << 10));
    empty(exchange(&srv, line.as_bytes()).await, 431);
    srv.shutdown().await;

    for name in ["README.md", "README.zh-CN.md"] {
        assert_eq!(
            promised(name),
            (answered_json.clone(), answered_empty.clone()),
            "{name} lists other statuses than the server answers"
        );
    }
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_order-server"))
        .args(args)
        .output()
        .expect("order-server --help");
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Both READMEs say every flag has an environment variable: the server's and the
/// healthcheck's `--help` show one for each.
#[test]
fn every_flag_has_an_environment_variable() {
    for args in [&["--help"][..], &["healthcheck", "--help"]] {
        let text = help(args);
        assert!(text.contains("[env: ORDER_SERVER_"), "{text}");
        for name in ["README.md", "README.zh-CN.md"] {
            let marker = match name {
                "README.md" => "Every flag has an environment variable",
                _ => "每个参数都有对应的环境变量",
            };
            let said = sentence(&readme(name), marker);
            assert_eq!(
                flags_without_env(&text),
                backticked_flags(&said),
                "{args:?} against {name}: {said}"
            );
        }
    }
}

/// A server on loopback that answers every connection with `status` and closes.
async fn answering(status: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    addr
}

/// The healthcheck's help says what it does: any 2xx is healthy, anything else is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_takes_any_2xx_as_its_help_says() {
    let text = help(&["--help"]);
    let line = text
        .lines()
        .find(|l| l.contains("healthcheck"))
        .expect("the healthcheck in --help");
    assert!(line.contains("any 2xx"), "{line}");
    for (status, code) in [
        ("200 OK", 0),
        ("204 No Content", 0),
        ("299 Whatever", 0),
        ("301 Moved Permanently", 1),
        ("500 Internal Server Error", 1),
    ] {
        let addr = answering(status).await;
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_order-server"))
                .args(["healthcheck", "--addr", &addr.to_string()])
                .output()
                .expect("healthcheck")
        })
        .await
        .expect("join");
        assert_eq!(out.status.code(), Some(code), "{status}");
    }
}

/// `order_service_build_info` carries the commit the build was given, and leaves the label
/// out when there was none (compose without ORDER_SERVER_COMMIT used to say "unknown").
#[tokio::test]
async fn the_build_info_leaves_an_unknown_commit_out() {
    let names = |labels: Vec<metrics::Label>| -> Vec<String> {
        labels.iter().map(|l| l.key().to_string()).collect()
    };
    assert_eq!(
        names(order_server::telemetry::build_labels("1.0.0", "")),
        ["version"]
    );
    assert_eq!(
        names(order_server::telemetry::build_labels("1.0.0", "abc123")),
        ["version", "commit"]
    );
    let srv = TestServer::start(quiet_config()).await;
    let m = srv.scrape().await;
    let info = m.select(c::BUILD_INFO, &[]).next().expect("build info");
    let commit = info.labels.get("commit").map(String::as_str);
    assert_eq!(commit, Some(order_server::COMMIT).filter(|c| !c.is_empty()));
    assert_ne!(commit, Some("unknown"));
    srv.shutdown().await;
}
