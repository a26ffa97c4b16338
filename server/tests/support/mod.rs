//! What the server's integration tests share: the workspace's test kit (an in-process order
//! server on loopback, scraping, RSS, tools), and the server binary as a child process with its
//! log lines.
#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

pub use order_server::test_kit::{quiet_config, rss_bytes, wait_for_exit, TestServer};

/// The server binary on 127.0.0.1:0 with JSON logs; returns it, its address and its log lines.
pub fn spawn_server(extra: &[&str]) -> (Child, SocketAddr, mpsc::Receiver<String>) {
    let (child, started, log) = spawn_server_logged(extra);
    let addr = started["fields"]["listen"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("listen address in the start-up line");
    (child, addr, log)
}

/// Like [`spawn_server`], returning the parsed start-up log line instead of the address.
pub fn spawn_server_logged(extra: &[&str]) -> (Child, serde_json::Value, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_order-server"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn order-server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = rx
        .iter()
        .find(|l| l.contains("order-server started"))
        .expect("start-up line");
    let line = serde_json::from_str(&started).expect("json log");
    (child, line, rx)
}
