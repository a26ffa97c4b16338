//! The order server's exposition as Prometheus's own linter reads it: a live scrape, after
//! orders of both types and an unknown path, passes `promtool check metrics` with no finding.

use order_metrics_checks::tools::tool;
use order_server::test_kit::TestServer;
use order_server::Config;

#[tokio::test]
#[cfg_attr(
    missing_promtool,
    ignore = "promtool not in target/tools/bin: run bash scripts/tools"
)]
async fn promtool_accepts_a_live_scrape() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let srv = TestServer::start(Config::default()).await;
    for _ in 0..5 {
        srv.get("/makeFoodOrder").await;
        srv.get("/makeClothingOrder").await;
    }
    srv.get("/nowhere").await;
    let text = srv.scrape_text().await;
    srv.shutdown().await;

    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check metrics:\n{report}");
    assert!(
        report.trim().is_empty(),
        "promtool lint findings:\n{report}"
    );
}
