//! External tools the checks run, and where each comes from. Prometheus, promtool,
//! Alertmanager, amtool and kustomize are the project's own copies in `target/tools/bin`, fetched by
//! `scripts/tools` from Debian unstable (never a system package, so a Prometheus 2 on `PATH`
//! cannot stand in for them); check-jsonschema, kubernetes-validate, node and npm come from `PATH`.
//! Under `CI=true` a missing tool is a failure; elsewhere a loud skip that says how to get it,
//! and `build.rs` marks the tests that need it as ignored, with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's Alertmanager reads its default notification templates.
const ALERTMANAGER_TEMPLATES: &str = "/usr/share/prometheus/alertmanager/default.tmpl";

/// The tools `scripts/tools` provides, and where it puts them.
const PROJECT_TOOLS: [&str; 5] = [
    "prometheus",
    "promtool",
    "alertmanager",
    "amtool",
    "kustomize",
];

pub use order_server::test_kit::project_tools_dir;

/// Finds `name`. Panics under `CI=true` when it is missing (CI installs it, so a missing tool
/// there is a broken set-up, never a pass); prints SKIPPED and returns `None` elsewhere.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = if PROJECT_TOOLS.contains(&name) {
        // Debian's Alertmanager cannot start without its templates in place (scripts/tools
        // puts them there when run as root).
        let ready = name != "alertmanager" || Path::new(ALERTMANAGER_TEMPLATES).is_file();
        Some(project_tools_dir().join(name)).filter(|p| p.is_file() && ready)
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
    };
    if found.is_none() {
        missing(&format!(
            "{name} not found: get it with `{}` (scripts/test does it)",
            install_hint(name)
        ));
    }
    found
}

/// The pip packages the guide's Flask service (`bench/guide/order-server.py`) needs, pinned
/// as `scripts/test` and `bench/run` install them.
pub const GUIDE_PACKAGES: [&str; 2] = ["flask==3.0.3", "prometheus-client==0.20.0"];

/// A `python3` that can run the guide's service (imports flask and prometheus_client), with
/// the same CI rule as [`tool`].
pub fn guide_python() -> Option<PathBuf> {
    python_with("flask, prometheus_client", &GUIDE_PACKAGES.join(" "))
}

/// The PyPI package that reads HdrHistogram's serializations in Python (module `hdrh`), pinned
/// as `scripts/test` installs it: an implementation the project did not write.
pub const HDRH_PACKAGE: &str = "hdrhistogram==0.10.8";

/// A `python3` that can import `hdrh`, with the same CI rule as [`tool`].
pub fn hdrh_python() -> Option<PathBuf> {
    python_with("hdrh.histogram", HDRH_PACKAGE)
}

/// A `python3` that can import `modules`; missing, says to pip-install `packages`.
fn python_with(modules: &str, packages: &str) -> Option<PathBuf> {
    let python = tool("python3")?;
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        missing(&format!(
            "python3 cannot import {modules}: get it with `python3 -m pip install {packages}` (scripts/test does it)"
        ));
        return None;
    }
    Some(python)
}

fn missing(hint: &str) {
    if order_server::test_kit::under_ci() {
        panic!("{hint} (required under CI)");
    }
    eprintln!("SKIPPED: {hint}");
}

fn install_hint(name: &str) -> &'static str {
    match name {
        "promtool" | "prometheus" | "amtool" | "kustomize" => "bash scripts/tools",
        "alertmanager" => "bash scripts/tools (as root: it also places the templates)",
        "check-jsonschema" => "python3 -m pip install check-jsonschema==0.39.0",
        "kubernetes-validate" => "python3 -m pip install kubernetes-validate==1.37.0",
        "chromium" => "apt-get install chromium",
        "node" | "npm" => "apt-get install nodejs npm",
        _ => "your package manager",
    }
}

/// The version a Prometheus-project binary reports (`prometheus, version 3.5.3+ds1 (...)`),
/// as numbers: `[3, 5, 3]`.
pub fn version_of(binary: &std::path::Path) -> Result<Vec<u64>, String> {
    let out = run(Command::new(binary).arg("--version"))?;
    let word = out
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .ok_or_else(|| format!("{}: no version in {out:?}", binary.display()))?;
    parse_version(word).ok_or_else(|| format!("{}: cannot read version {word:?}", binary.display()))
}

/// `v3.13.3`, `3.5.3+ds1` or `0.34.1` as numbers; `None` for anything else.
pub fn parse_version(text: &str) -> Option<Vec<u64>> {
    let core = text.trim_start_matches('v');
    let core = core.split(['+', '-']).next()?;
    let parts: Option<Vec<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| p.len() == 3)
}

/// Runs a command and returns its combined output, or the output as the error when it fails.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed ({}):\n{text}", out.status))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_read_from_tags_and_debian_builds() {
        assert_eq!(parse_version("v3.13.3"), Some(vec![3, 13, 3]));
        assert_eq!(parse_version("3.5.3+ds1"), Some(vec![3, 5, 3]));
        assert_eq!(parse_version("0.34.1"), Some(vec![0, 34, 1]));
        assert_eq!(parse_version("v3.13"), None);
        assert_eq!(parse_version("latest"), None);
    }
}
