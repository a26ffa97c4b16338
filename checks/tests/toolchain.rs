//! The oldest Rust the workspace builds with: `rust-version` in Cargo.toml, which every crate
//! inherits, must be at least the `rust_version` of every package in Cargo.lock that a build
//! compiles, or Cargo refuses the build on a compiler the READMEs call good enough (issue 26:
//! 1.85 was declared while the lockfile held crates that need 1.88). Packages are taken from
//! Cargo's own metadata, resolved for each platform the project builds on; the READMEs must
//! name the same version.

use std::collections::BTreeMap;
use std::process::Command;

use order_metrics_checks::repo_root;
use serde_json::Value;

/// Where the workspace is built: the image and CI (Linux, both architectures), and the
/// laptops the load generator runs on.
const PLATFORMS: [&str; 5] = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
];

fn version(text: &str) -> Vec<u64> {
    let mut v: Vec<u64> = text
        .split('.')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("rust_version {text:?}"))
        })
        .collect();
    assert!(!v.is_empty() && v.len() <= 3, "rust_version {text:?}");
    // 1.88 is 1.88.0.
    v.resize(3, 0);
    v
}

/// `cargo metadata` for `platform`, from the lockfile as it is: offline when the crates of
/// every platform are already in Cargo's cache, else fetching their manifests.
fn metadata(platform: &str) -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = |offline: bool| {
        Command::new(&cargo)
            .current_dir(repo_root())
            .args(["metadata", "--format-version", "1", "--locked"])
            .args(["--filter-platform", platform])
            .args(offline.then_some("--offline"))
            .output()
            .expect("run cargo metadata")
    };
    let out = Some(run(true))
        .filter(|o| o.status.success())
        .unwrap_or_else(|| run(false));
    assert!(
        out.status.success(),
        "cargo metadata --filter-platform {platform}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON")
}

/// The workspace's `rust-version`, which every member inherits.
fn declared(meta: &Value) -> String {
    let members: Vec<&Value> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .collect();
    let versions: Vec<&str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| members.contains(&&p["id"]))
        .map(|p| {
            p["rust_version"]
                .as_str()
                .expect("every member has rust-version")
        })
        .collect();
    assert_eq!(versions.len(), members.len());
    assert!(
        versions.windows(2).all(|w| w[0] == w[1]),
        "members disagree: {versions:?}"
    );
    versions[0].to_string()
}

#[test]
fn no_locked_package_needs_a_newer_compiler_than_rust_version() {
    let mut declared_version = None;
    let mut newest: BTreeMap<Vec<u64>, Vec<String>> = BTreeMap::new();
    for platform in PLATFORMS {
        let meta = metadata(platform);
        let ours = declared(&meta);
        assert!(declared_version.get_or_insert(ours.clone()) == &ours);
        let built: Vec<&Value> = meta["resolve"]["nodes"]
            .as_array()
            .expect("resolve")
            .iter()
            .map(|n| &n["id"])
            .collect();
        assert!(built.len() > 100, "{platform}: {} packages", built.len());
        let limit = version(&ours);
        let mut too_new = Vec::new();
        for p in meta["packages"].as_array().expect("packages") {
            let Some(rv) = p["rust_version"].as_str() else {
                continue;
            };
            if !built.contains(&&p["id"]) {
                continue;
            }
            let needs = version(rv);
            let name = format!("{} {} (rust {rv})", p["name"], p["version"]);
            if needs > limit {
                too_new.push(name.clone());
            }
            newest.entry(needs).or_default().push(name);
        }
        assert!(
            too_new.is_empty(),
            "on {platform}, rust-version = {ours:?} but these locked packages need newer: {too_new:#?}"
        );
    }
    // The declared version is the real minimum the lockfile sets, not a guess above it.
    let declared_version = declared_version.expect("platforms");
    let (top, who) = newest.last_key_value().expect("packages with rust_version");
    assert_eq!(
        &version(&declared_version),
        top,
        "rust-version {declared_version} is above what any locked package needs ({who:?}); our own code needs it?"
    );
}

#[test]
fn the_readmes_name_the_declared_rust_version() {
    let declared = declared(&metadata(PLATFORMS[0]));
    for (readme, says) in [
        (
            "README.md",
            format!("a Rust toolchain ({declared} or newer)"),
        ),
        (
            "README.zh-CN.md",
            format!("Rust 工具链（{declared} 或更新）"),
        ),
    ] {
        let text = std::fs::read_to_string(repo_root().join(readme)).expect("README");
        assert!(text.contains(&says), "{readme} does not say {says:?}");
    }
}
