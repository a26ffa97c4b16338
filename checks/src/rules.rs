//! The bundled Prometheus rule files as data: groups of recording and alerting rules with
//! their labels and annotations, the alert cases in the promtool test files, and the time
//! compression the end-to-end check applies so hour-long windows fit in a two-minute run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: invalid YAML: {1}")]
    Yaml(PathBuf, String),
    #[error("{0}: {1}")]
    Shape(PathBuf, String),
}

/// One rule: an alert (with `alert` set) or a recording rule (`record` set).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub file: PathBuf,
    pub group: String,
    pub alert: Option<String>,
    pub record: Option<String>,
    pub expr: String,
    pub for_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// `deploy/prometheus/rules/*.rules.yml`, sorted.
pub fn rule_files(root: &Path) -> Result<Vec<PathBuf>, RulesError> {
    files_with_suffix(&root.join("deploy/prometheus/rules"), ".rules.yml")
}

/// `deploy/prometheus/tests/*.test.yml`, sorted.
pub fn test_files(root: &Path) -> Result<Vec<PathBuf>, RulesError> {
    files_with_suffix(&root.join("deploy/prometheus/tests"), ".test.yml")
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, RulesError> {
    let entries = std::fs::read_dir(dir).map_err(|e| RulesError::Read(dir.into(), e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    Ok(files)
}

fn load_yaml(path: &Path) -> Result<Yaml, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read(path.into(), e))?;
    let mut docs = YamlLoader::load_from_str(&text)
        .map_err(|e| RulesError::Yaml(path.into(), e.to_string()))?;
    if docs.len() != 1 {
        return Err(RulesError::Shape(
            path.into(),
            format!("expected one YAML document, found {}", docs.len()),
        ));
    }
    Ok(docs.remove(0))
}

fn string_map(y: &Yaml) -> BTreeMap<String, String> {
    y.as_hash()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| {
                    let v = match v {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Real(r) => r.clone(),
                        Yaml::Boolean(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((k.as_str()?.to_string(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every rule of one rule file.
pub fn load(path: &Path) -> Result<Vec<Rule>, RulesError> {
    let doc = load_yaml(path)?;
    let shape = |m: &str| RulesError::Shape(path.into(), m.into());
    let groups = doc["groups"]
        .as_vec()
        .ok_or_else(|| shape("no `groups` list"))?;
    let mut out = Vec::new();
    for g in groups {
        let group = g["name"]
            .as_str()
            .ok_or_else(|| shape("a group without a name"))?;
        for r in g["rules"]
            .as_vec()
            .ok_or_else(|| shape("a group without rules"))?
        {
            let expr = r["expr"]
                .as_str()
                .ok_or_else(|| shape("a rule without expr"))?;
            out.push(Rule {
                file: path.into(),
                group: group.into(),
                alert: r["alert"].as_str().map(String::from),
                record: r["record"].as_str().map(String::from),
                expr: expr.trim().to_string(),
                for_: r["for"].as_str().map(String::from),
                labels: string_map(&r["labels"]),
                annotations: string_map(&r["annotations"]),
            });
        }
    }
    Ok(out)
}

/// Every rule of every bundled rule file.
pub fn load_all(root: &Path) -> Result<Vec<Rule>, RulesError> {
    let mut all = Vec::new();
    for f in rule_files(root)? {
        all.extend(load(&f)?);
    }
    Ok(all)
}

/// What the promtool test files check for one alert name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AlertCoverage {
    /// Cases that expect the alert to fire, with the labels they expect.
    pub firing: Vec<BTreeMap<String, String>>,
    /// Cases that expect it to stay silent (`exp_alerts: []`).
    pub silent: usize,
}

/// Alert name -> what the test files assert about it.
pub fn coverage(test_files: &[PathBuf]) -> Result<BTreeMap<String, AlertCoverage>, RulesError> {
    let mut out: BTreeMap<String, AlertCoverage> = BTreeMap::new();
    for path in test_files {
        let doc = load_yaml(path)?;
        for t in doc["tests"].as_vec().into_iter().flatten() {
            for a in t["alert_rule_test"].as_vec().into_iter().flatten() {
                let Some(name) = a["alertname"].as_str() else {
                    continue;
                };
                let entry = out.entry(name.to_string()).or_default();
                match a["exp_alerts"].as_vec() {
                    Some(v) if v.is_empty() => entry.silent += 1,
                    Some(v) => entry
                        .firing
                        .extend(v.iter().map(|e| string_map(&e["exp_labels"]))),
                    None => entry.silent += 1,
                }
            }
        }
    }
    Ok(out)
}

/// A Prometheus duration (`90s`, `5m`, `1h30m`, `3d`) in milliseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(ms)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn format_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Divides every range (`[5m]`) and every `for:` in a rule file by `factor`, so the
/// end-to-end check can watch a 1h/5m burn-rate alert fire and resolve within minutes on the
/// real rules. Fails when a duration would drop below one second.
pub fn compress(text: &str, factor: u64) -> Result<String, String> {
    let scale = |d: &str| -> Result<String, String> {
        let ms = parse_duration(d).ok_or_else(|| format!("not a duration: {d:?}"))?;
        let scaled = ms / factor;
        if scaled < 1000 {
            return Err(format!("{d} / {factor} is under a second"));
        }
        Ok(format_ms(scaled))
    };
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(value) = trimmed.strip_prefix("for:") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}for: {}\n", scale(value.trim())?));
            continue;
        }
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            let (head, tail) = rest.split_at(open + 1);
            out.push_str(head);
            match tail.find(']') {
                Some(close) if parse_duration(&tail[..close]).is_some() => {
                    out.push_str(&scale(&tail[..close])?);
                    rest = &tail[close..];
                }
                _ => rest = tail,
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// Where the Kubernetes copy of the rules lives.
pub const PROMETHEUS_RULE_PATH: &str = "deploy/k8s/rules/prometheusrule.yaml";

/// The `PrometheusRule` manifest carrying every bundled rule file's groups unchanged: one
/// object per file, named after it, in the `monitoring` namespace with the label the CCE
/// monitoring add-on selects rules by. The rule file's text is indented under `spec:`, so
/// block scalars and comments survive and a diff against the rule files stays readable.
pub fn prometheus_rule_manifest(root: &Path) -> Result<String, RulesError> {
    let mut out = String::from(
        "# Generated from deploy/prometheus/rules/*.rules.yml; do not edit by hand. After changing\n\
         # the rules, regenerate it with:\n\
         #   REGENERATE=1 cargo test -p order-metrics-checks --test deploy\n\
         # Namespace `monitoring` and the label `role: operator-prometheus` are what the CCE\n\
         # cloud-native monitoring add-on loads rules from; kube-prometheus-stack selects rules by\n\
         # its ruleSelector instead (by default the label release: <helm release name>).\n",
    );
    for (i, path) in rule_files(root)?.iter().enumerate() {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read(path.into(), e))?;
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        let name = file.trim_end_matches(".rules.yml");
        let body = text
            .find("\ngroups:")
            .map(|at| &text[at + 1..])
            .ok_or_else(|| RulesError::Shape(path.into(), "no top-level `groups:`".into()))?;
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&format!(
            "apiVersion: monitoring.coreos.com/v1\n\
             kind: PrometheusRule\n\
             metadata:\n  \
             name: {name}\n  \
             namespace: monitoring\n  \
             labels:\n    \
             app.kubernetes.io/part-of: order-metrics\n    \
             role: operator-prometheus\n\
             spec:\n"
        ));
        for line in body.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("3d"), Some(259_200_000));
        assert_eq!(parse_duration("250ms"), Some(250));
        assert_eq!(parse_duration("m5"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn compress_scales_ranges_and_for_only() {
        let text = "      - record: x:rate5m\n        expr: rate(a[5m]) / rate(b{le=\"0.25\"}[1h])\n        for: 2m\n";
        let out = compress(text, 60).expect("compresses");
        assert_eq!(
            out,
            "      - record: x:rate5m\n        expr: rate(a[5s]) / rate(b{le=\"0.25\"}[60s])\n        for: 2s\n"
        );
        assert!(compress("expr: rate(a[30s])\n", 60).is_err());
    }
}
