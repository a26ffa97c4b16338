//! The image build, rehearsed on the host (no Docker engine runs here): the Dockerfile's build
//! stage gets exactly what its `COPY` lines copy, less `.dockerignore`, in an empty directory,
//! and its `RUN` steps run there, the real `cargo build --release --locked` included, with
//! the host's crates registry and a target directory of its own (never the workspace's). The
//! files the final stage copies must exist, and the binaries must start: the server answers
//! `/healthz` and the image's HEALTHCHECK command, and carries the build argument's commit;
//! the load generator drives a second of orders against it.
//!
//! Deleting a `COPY` the build needs, or a workspace member from the context, fails here.
//! Binaries that pass are left in `target/image`, where CI's soak (`scripts/soak` with
//! `SOAK_BIN_DIR`) runs the image's own builds for a minute.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use order_metrics_checks::docker::{self, Caches};
use order_metrics_checks::prometheus::free_port;
use order_metrics_checks::repo_root;
use order_metrics_checks::tools::{parse_version, run};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME")
}

/// The Rust release the build image pins (`rust:1.95.0-slim-trixie` -> `[1, 95, 0]`).
fn pinned_rust() -> Vec<u64> {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let image = docker::parse(&text)
        .into_iter()
        .find_map(|i| {
            (i.keyword == "ARG")
                .then(|| i.args.strip_prefix("RUST_IMAGE=").map(String::from))
                .flatten()
        })
        .expect("ARG RUST_IMAGE");
    let tag = image.split_once(':').expect("a tagged image").1;
    parse_version(tag.split('-').next().unwrap_or_default())
        .unwrap_or_else(|| panic!("{image}: the tag names no Rust release"))
}

#[test]
fn the_build_stage_builds_from_a_clean_context_and_the_binaries_run() {
    // The host toolchain stands in for the build image, so it must be the same release. CI
    // has it; elsewhere a different toolchain skips the rehearsal, loudly.
    let rustc = run(Command::new("rustc").arg("--version")).expect("rustc");
    let host = parse_version(rustc.split_whitespace().nth(1).unwrap_or_default())
        .unwrap_or_else(|| panic!("cannot read {rustc:?}"));
    if host[..2] != pinned_rust()[..2] {
        let why = format!(
            "the Dockerfile builds with Rust {:?} but this host has {rustc}",
            pinned_rust()
        );
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "{why}");
        eprintln!("SKIPPED: {why}");
        return;
    }

    let stage = tempfile::tempdir().expect("tempdir");
    let caches = Caches {
        dir: repo_root().join("target/docker-rehearsal"),
        registry: cargo_home().join("registry"),
    };
    let started = Instant::now();
    let rehearsal = docker::rehearse(
        &repo_root(),
        stage.path(),
        &caches,
        &BTreeMap::from([("ORDER_SERVER_COMMIT".into(), "rehearsal01".into())]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("build stage rehearsed in {:?}", started.elapsed());
    // Nothing outside the context reached the stage.
    for absent in [".git", "deploy", "README.md"] {
        let p = stage.path().join("src").join(absent);
        assert!(!p.exists(), "{absent} is in the build context");
    }
    let server = rehearsal
        .outputs
        .get("/usr/local/bin/order-server")
        .expect("the final stage copies order-server");
    let loadgen = rehearsal
        .outputs
        .get("/usr/local/bin/loadgen")
        .expect("the final stage copies loadgen");

    // The entrypoint, as the runtime stage starts it, on a loopback port.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().expect("port")));
    let _server = Killed(
        Command::new(server)
            .env_clear()
            .env("ORDER_SERVER_LISTEN", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the rehearsed order-server"),
    );
    // The image's HEALTHCHECK command, pointed at that port.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = Command::new(server)
            .arg("healthcheck")
            .env_clear()
            .env("ORDER_SERVER_HEALTHCHECK_ADDR", addr.to_string())
            .output()
            .expect("run healthcheck");
        if probe.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rehearsed order-server never passed its HEALTHCHECK: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (health, metrics) = rt.block_on(async {
        let get = |path: &str| {
            let url = format!("http://{addr}{path}");
            async move {
                let r = reqwest::get(&url).await.expect(&url);
                (r.status().as_u16(), r.text().await.expect("body"))
            }
        };
        (get("/healthz").await, get("/metrics").await)
    });
    assert_eq!(health.0, 200, "/healthz: {}", health.1);
    assert!(
        metrics
            .1
            .lines()
            .any(|l| l.starts_with("order_service_build_info{") && l.contains("rehearsal01")),
        "the build argument's commit is not in order_service_build_info"
    );

    // The load generator from the same stage: a second of orders, then a clean exit.
    let out = Command::new(loadgen)
        .args(["--target", &format!("http://{addr}")])
        .args([
            "--food-rate",
            "20",
            "--clothing-rate",
            "10",
            "--duration",
            "1s",
        ])
        .arg("--no-progress")
        .env_clear()
        .output()
        .expect("run the rehearsed loadgen");
    assert!(
        out.status.success(),
        "loadgen from the image failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What the image carries, kept for the soak: each copied beside its place and renamed
    // into it, so a reader never sees half a binary.
    let kept = repo_root().join("target/image");
    std::fs::create_dir_all(&kept).expect("target/image");
    for bin in [server, loadgen] {
        let name = bin.file_name().expect("a binary's name");
        let part = kept.join(name).with_extension("part");
        std::fs::copy(bin, &part).expect("copy a binary to target/image");
        std::fs::rename(&part, kept.join(name)).expect("rename into target/image");
    }
}
