//! The full-screen terminal view, run as a person would: the binary in a detached tmux
//! session (Debian's `tmux`) against the real order server on loopback. `capture-pane` reads
//! the screen, `send-keys` types: the view shows the run's figures, `+` raises the rate as the
//! server measures it, resizing keeps a frame, and `q` stops the run with exit 0, the report on
//! standard output and the terminal out of the alternate screen. `--no-tui` and a pipe each
//! give the one-line progress instead.

#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use order_server::contract as c;
use order_server::exposition::Exposition;

/// tmux, or `None` (a failure under CI, which installs it).
fn tmux() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("tmux"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !order_server::test_kit::under_ci(),
            "tmux is missing: apt-get install tmux"
        );
        eprintln!("SKIPPED: tmux not on PATH (apt-get install tmux)");
    }
    found
}

/// One tmux server of its own (`-L`), so the test neither sees nor touches the user's.
struct Session {
    tmux: PathBuf,
    socket: String,
}

impl Session {
    fn start(tmux: &Path, name: &str, command: &str) -> Self {
        let socket = format!("loadgen-test-{}-{name}", std::process::id());
        let s = Session {
            tmux: tmux.to_path_buf(),
            socket,
        };
        let ok = s
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "140",
                "-y",
                "45",
                command,
            ])
            .status()
            .expect("tmux runs");
        assert!(ok.success(), "tmux new-session failed");
        s
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.tmux);
        c.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        c
    }

    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", "t"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let ok = self
            .cmd(&["send-keys", "-t", "t", keys])
            .status()
            .expect("send-keys");
        assert!(ok.success());
    }

    fn alternate_screen(&self) -> bool {
        let out = self
            .cmd(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .output()
            .expect("display");
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Waits until the screen holds every one of `texts`; the screen.
    fn until(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.screen();
            if texts.iter().all(|t| s.contains(t)) {
                return s;
            }
            assert!(Instant::now() < deadline, "never showed {texts:?}:\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

/// The shell command that runs the load generator with `args` and then records its exit
/// code in `exit` and keeps the pane open.
fn command(args: &str, exit: &Path) -> String {
    format!(
        "{} {args}; echo $? > {}; sleep 120",
        env!("CARGO_BIN_EXE_loadgen"),
        exit.display()
    )
}

async fn food_orders(server: &support::TestServer) -> f64 {
    let text = server.scrape_text().await;
    Exposition::parse(&text).map_or(0.0, |m| {
        m.sum(c::ORDERS_PROCESSED, &[("order_type", "food")])
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_shows_the_run_its_keys_steer_it_and_q_leaves_a_clean_terminal() {
    let Some(tmux) = tmux() else { return };
    let (target, server) = support::order_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exit = dir.path().join("exit");
    let report = dir.path().join("report.json");
    let args = format!(
        "--target {target} --food-rate 40 --clothing-rate 0 --arrivals uniform --duration 120s \
         --threshold 'p99<250ms' --report-file {}",
        report.display()
    );
    let s = Session::start(&tmux, "view", &command(&args, &exit));
    let screen = s.until(&[
        "loadgen →",
        "asked 40.0/s",
        "thresholds so far",
        "p99<250ms",
    ]);
    assert!(
        s.alternate_screen(),
        "the view is on the alternate screen:\n{screen}"
    );
    assert!(
        screen.contains("food") && screen.contains("lag p99"),
        "{screen}"
    );

    // Resizing keeps a whole frame.
    let _ = s
        .cmd(&["resize-window", "-t", "t", "-x", "100", "-y", "30"])
        .status();
    s.until(&["loadgen →", "thresholds so far"]);
    let _ = s
        .cmd(&["resize-window", "-t", "t", "-x", "140", "-y", "45"])
        .status();

    // Five presses of + raise 40/s to 40 x 1.1^5 = 64.4/s, as the server counts.
    let n0 = food_orders(&server).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = (food_orders(&server).await - n0) / 3.0;
    for _ in 0..5 {
        s.keys("+");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let screen = s.until(&["asked 64.4/s", "rates (tui)"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n1 = food_orders(&server).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = (food_orders(&server).await - n1) / 3.0;
    assert!(
        (35.0..=45.0).contains(&before) && (57.0..=72.0).contains(&after),
        "the server saw {before}/s, then {after}/s after + x5:\n{screen}"
    );

    // q: the run stops, the terminal comes back, the report is printed, exit 0.
    s.keys("q");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exit.exists() {
        assert!(
            Instant::now() < deadline,
            "no exit after q:\n{}",
            s.screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let code = std::fs::read_to_string(&exit).expect("exit code");
    assert_eq!(code.trim(), "0", "{}", s.screen());
    assert!(!s.alternate_screen(), "left on the alternate screen");
    let screen = s.screen();
    for text in [
        "stopped by interrupted",
        "threshold p99<250ms",
        "latency (ms)",
    ] {
        assert!(
            screen.contains(text),
            "the report lacks {text:?}:\n{screen}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report file")).expect("JSON");
    let kinds: Vec<(&str, &str)> = json["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or(""),
                e["source"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    assert!(
        kinds[..5].iter().all(|k| *k == ("rates", "tui")),
        "{kinds:?}"
    );
    assert_eq!(kinds[5], ("stop", "tui"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tui_and_a_pipe_give_the_one_line_progress() {
    let Some(tmux) = tmux() else { return };
    let (target, _server) = support::order_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, tail) in [("no-tui", " --no-tui"), ("pipe", " | cat")] {
        let exit = dir.path().join(name);
        let args = format!("--target {target} --food-rate 20 --clothing-rate 0 --duration 4s");
        let cmd = match tail {
            " | cat" => format!(
                "{} {args} | cat; echo $? > {}; sleep 120",
                env!("CARGO_BIN_EXE_loadgen"),
                exit.display()
            ),
            _ => command(&format!("{args}{tail}"), &exit),
        };
        let s = Session::start(&tmux, name, &cmd);
        let screen = s.until(&["/s (target"]);
        assert!(
            !screen.contains("thresholds so far"),
            "{name}: the view showed:\n{screen}"
        );
        assert!(!s.alternate_screen(), "{name}: alternate screen");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !exit.exists() {
            assert!(
                Instant::now() < deadline,
                "{name}: no exit:\n{}",
                s.screen()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let screen = s.screen();
        assert!(
            screen.contains("latency (ms)"),
            "{name}: no report:\n{screen}"
        );
    }
}
