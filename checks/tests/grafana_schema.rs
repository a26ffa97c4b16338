//! The dashboards against Grafana's own published types: `checks/grafana-schema` pins npm's
//! `@grafana/schema` (13.2.x) and TypeScript with a lockfile; `generate.mjs` turns each
//! dashboard into a `.ts` file typed against the dashboard model and each panel's options and
//! field config (enum values as strings, fields optional, unknown keys refused, a short
//! allow-list for fields Grafana writes that the schema lacks), and `tsc` checks them. Negative
//! controls show the check can fail: a misspelled option key and a wrong enum value do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use order_metrics_checks::repo_root;
use order_metrics_checks::tools::{run, tool};
use serde_json::Value;

/// `npm ci` once per test binary, whichever test gets there first.
static INSTALL: Mutex<bool> = Mutex::new(false);

fn package_dir() -> PathBuf {
    repo_root().join("checks/grafana-schema")
}

/// `node`, after `npm ci` made `node_modules` what the lockfile says; `None` (skipped, or a
/// panic under CI) when node or npm is missing.
fn installed() -> Option<PathBuf> {
    let node = tool("node")?;
    let npm = tool("npm")?;
    let dir = package_dir();
    let mut done = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        // Offline with node_modules already as locked, `npm ci` (which starts by deleting
        // node_modules) is skipped rather than left to fail.
        if !matches_lockfile(&dir) {
            let ci = run(Command::new(&npm)
                .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
                .current_dir(&dir));
            if let Err(e) = ci {
                panic!("npm ci in {} failed: {e}", dir.display());
            }
            assert!(
                matches_lockfile(&dir),
                "npm ci left node_modules unlike package-lock.json"
            );
        }
        *done = true;
    }
    Some(node)
}

/// Whether every package the lockfile names is installed at its locked version.
fn matches_lockfile(dir: &Path) -> bool {
    let Ok(lock) = std::fs::read_to_string(dir.join("package-lock.json")) else {
        return false;
    };
    let Ok(lock) = serde_json::from_str::<Value>(&lock) else {
        return false;
    };
    let Some(packages) = lock["packages"].as_object() else {
        return false;
    };
    packages
        .iter()
        .filter(|(p, _)| !p.is_empty())
        .all(|(p, v)| {
            std::fs::read_to_string(dir.join(p).join("package.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|installed| installed["version"] == v["version"])
        })
}

/// Runs the generator on `dashboards` into `out`, then `tsc` on the result: its exit status
/// and output.
fn type_check(node: &Path, out: &Path, dashboards: &[PathBuf]) -> (bool, String) {
    let dir = package_dir();
    run(Command::new(node)
        .arg(dir.join("generate.mjs"))
        .arg(out)
        .args(dashboards))
    .unwrap_or_else(|e| panic!("generate.mjs: {e}"));
    let tsc = Command::new(node)
        .arg(dir.join("node_modules/typescript/bin/tsc"))
        .arg("-p")
        .arg(out)
        .output()
        .expect("run tsc");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&tsc.stdout),
        String::from_utf8_lossy(&tsc.stderr)
    );
    (tsc.status.success(), text)
}

fn bundled() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("dashboards"))
        .expect("dashboards/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
#[cfg_attr(
    missing_node,
    ignore = "node or npm not on PATH: apt-get install nodejs npm"
)]
fn both_dashboards_type_check_against_grafana_schema() {
    let Some(node) = installed() else { return };
    let files = bundled();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap_or_default().to_string_lossy().into())
        .collect();
    assert!(
        names.contains(&"order-service.json".to_string())
            && names.contains(&"load-generator.json".to_string()),
        "{names:?}"
    );
    let out = tempfile::tempdir().expect("tempdir");
    let (ok, text) = type_check(&node, out.path(), &files);
    assert!(ok, "tsc found problems:\n{text}");
    // Both files were generated and checked, each with its panels' options.
    for name in ["order_service.ts", "load_generator.ts"] {
        let ts = std::fs::read_to_string(out.path().join(name)).expect(name);
        assert!(ts.contains("Checked<timeseries.Options>"), "{name}");
        assert!(ts.contains("Checked<timeseries.FieldConfig>"), "{name}");
    }
}

/// A copy of `order-service.json` with `change` applied, written as `name.json` in `dir`.
fn broken(dir: &Path, name: &str, change: impl FnOnce(&mut Value)) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("dashboards/order-service.json"))
        .expect("order-service.json");
    let mut d: Value = serde_json::from_str(&text).expect("json");
    change(&mut d);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&d).expect("json")).expect("write");
    path
}

/// The first panel of type `kind`, rows' panels included.
fn panel<'a>(d: &'a mut Value, kind: &str) -> &'a mut Value {
    let panels = d["panels"].as_array_mut().expect("panels");
    panels
        .iter_mut()
        .find(|p| p["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} panel"))
}

fn rename(object: &mut Value, from: &str, to: &str) {
    let map = object.as_object_mut().expect("object");
    let v = map.remove(from).unwrap_or_else(|| panic!("no {from}"));
    map.insert(to.into(), v);
}

#[test]
#[cfg_attr(
    missing_node,
    ignore = "node or npm not on PATH: apt-get install nodejs npm"
)]
fn misspelled_keys_and_wrong_enum_values_fail() {
    let Some(node) = installed() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // (file, what tsc must say about it)
    let controls = [
        (
            broken(dir.path(), "option_key", |d| {
                rename(&mut panel(d, "stat")["options"], "colorMode", "colourMode")
            }),
            "'\"colourMode\"' does not exist",
        ),
        (
            broken(dir.path(), "legend_key", |d| {
                let legend = &mut panel(d, "timeseries")["options"]["legend"];
                rename(legend, "displayMode", "dispalyMode")
            }),
            "'\"dispalyMode\"' does not exist",
        ),
        (
            broken(dir.path(), "custom_enum", |d| {
                panel(d, "timeseries")["fieldConfig"]["defaults"]["custom"]["drawStyle"] =
                    "lines".into()
            }),
            "Type '\"lines\"' is not assignable",
        ),
        (
            broken(dir.path(), "option_enum", |d| {
                panel(d, "stat")["options"]["graphMode"] = "spark".into()
            }),
            "Type '\"spark\"' is not assignable",
        ),
        (
            broken(dir.path(), "numeric_enum", |d| {
                d["templating"]["list"][1]["refresh"] = 7.into()
            }),
            "Type '7' is not assignable",
        ),
        (
            broken(dir.path(), "dashboard_key", |d| rename(d, "title", "titel")),
            "'\"titel\"' does not exist",
        ),
    ];
    let files: Vec<PathBuf> = controls.iter().map(|(f, _)| f.clone()).collect();
    let out = dir.path().join("out");
    let (ok, text) = type_check(&node, &out, &files);
    assert!(!ok, "tsc accepted broken dashboards:\n{text}");
    for (file, needle) in &controls {
        let ts = format!(
            "{}.ts",
            file.file_stem().unwrap_or_default().to_string_lossy()
        );
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&ts) && l.contains("error TS"))
            .collect();
        assert!(
            errors.iter().any(|l| l.contains(needle)),
            "{ts}: expected an error with {needle:?}, got:\n{}",
            errors.join("\n")
        );
    }
}

#[test]
fn the_versions_are_pinned_by_a_lockfile() {
    let dir = package_dir();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("package.json")).expect("package.json"),
    )
    .expect("package.json is JSON");
    let lock: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("package-lock.json")).expect("package-lock.json"),
    )
    .expect("package-lock.json is JSON");
    let schema = manifest["devDependencies"]["@grafana/schema"]
        .as_str()
        .expect("@grafana/schema in devDependencies");
    assert!(schema.starts_with("13.2."), "{schema}");
    for (name, wanted) in manifest["devDependencies"]
        .as_object()
        .expect("devDependencies")
    {
        // Exact versions, no ranges; the lockfile holds the same, with integrity hashes.
        let wanted = wanted.as_str().expect("version");
        assert!(
            wanted.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "{name} {wanted}"
        );
        let locked = &lock["packages"][format!("node_modules/{name}")];
        assert_eq!(locked["version"], wanted, "{name}");
        assert!(
            locked["integrity"]
                .as_str()
                .is_some_and(|i| i.starts_with("sha512-")),
            "{name}"
        );
    }
}
