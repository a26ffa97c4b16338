//! Marks each check whose external tool is missing as ignored, with the reason (the tests'
//! `cfg_attr(missing_*, ignore = ...)`), so `cargo test` reports it as not run instead of
//! passed. Under `CI=true` nothing is ignored: there a missing tool fails its test. The
//! script runs again when `target/tools` changes (`scripts/tools`), when a directory on
//! `PATH` or Python's site-packages does (a pip install), or when `CI` or `PATH` does. The
//! flags are fixed when the tests are built: test binaries built without `CI=true` and run
//! later with it still skip.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = here.parent().map(Path::to_path_buf).unwrap_or(here);
    let tools = root.join("target/tools");
    let bin = tools.join("bin");
    // A path that does not exist would make the script run on every build; the directory is
    // made here (empty until scripts/tools fills it) so that filling it is the change seen.
    let _ = std::fs::create_dir_all(&tools);
    println!("cargo::rerun-if-changed={}", tools.display());
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    // Absolute PATH entries only: a relative one (./target/debug) changes with every build.
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .filter(|d| d.is_absolute() && d.is_dir())
                .collect()
        })
        .unwrap_or_default();
    for d in &path_dirs {
        println!("cargo::rerun-if-changed={}", d.display());
    }
    // Where pip puts flask and prometheus_client.
    if let Some(site) = python_site_packages() {
        println!("cargo::rerun-if-changed={}", site.display());
    }
    let on_path = |name: &str| path_dirs.iter().any(|d| d.join(name).is_file());
    let imports = |modules: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let guide_python = imports("flask, prometheus_client");
    let hdrh = imports("hdrh.histogram");
    let alertmanager_templates = Path::new("/usr/share/prometheus/alertmanager/default.tmpl");

    let under_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let present = [
        ("missing_prometheus", bin.join("prometheus").is_file()),
        ("missing_promtool", bin.join("promtool").is_file()),
        (
            "missing_alertmanager",
            bin.join("alertmanager").is_file() && alertmanager_templates.is_file(),
        ),
        ("missing_amtool", bin.join("amtool").is_file()),
        ("missing_kustomize", bin.join("kustomize").is_file()),
        ("missing_check_jsonschema", on_path("check-jsonschema")),
        (
            "missing_kubernetes_validate",
            on_path("kubernetes-validate"),
        ),
        ("missing_guide_python", guide_python),
        ("missing_hdrh", hdrh),
        ("missing_chromium", on_path("chromium")),
        (
            "missing_chromedriver",
            on_path("chromium") && on_path("chromedriver"),
        ),
        ("missing_node", on_path("node") && on_path("npm")),
    ];
    for (cfg, found) in present {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if !found && !under_ci {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

fn python_site_packages() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    dir.is_dir().then_some(dir)
}
