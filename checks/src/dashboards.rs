//! The Grafana dashboards in `dashboards/`: loading, the queries of every panel and
//! annotation, and a lint in the spirit of grafana/dashboard-linter (which cannot be
//! installed here): one `datasource` variable used everywhere, no hard-coded data source,
//! unique panel ids, a unit on every panel, `$__rate_interval` in rates, a job matcher on
//! every selector, and queries that parse.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::promql;

/// The data source reference every panel and target must use.
pub const DATASOURCE_UID: &str = "${datasource}";

/// Values the checks give Grafana's variables to turn a panel query into plain PromQL.
/// `$__range` is a short window because the end-to-end run is short.
pub const GRAFANA_BUILTINS: [(&str, &str); 4] = [
    ("__rate_interval", "15s"),
    ("__interval", "5s"),
    ("__range", "1m"),
    ("__range_s", "60"),
];

#[derive(Debug, Clone)]
pub struct Dashboard {
    pub path: PathBuf,
    pub json: Value,
}

/// One query of a dashboard, from a panel target or an annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Panel title (or "annotation: name").
    pub source: String,
    pub expr: String,
    pub instant: bool,
    pub annotation: bool,
}

/// Every `*.json` in `dir`, sorted, parsed.
pub fn load_all(dir: &Path) -> Result<Vec<Dashboard>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let json = serde_json::from_str(&text)
                .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
            Ok(Dashboard { path, json })
        })
        .collect()
}

impl Dashboard {
    pub fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or_default()
    }

    pub fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or_default()
    }

    /// All panels, with the panels of collapsed rows, rows included.
    pub fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        for p in self.json["panels"].as_array().into_iter().flatten() {
            out.push(p);
            out.extend(p["panels"].as_array().into_iter().flatten());
        }
        out
    }

    /// Every template variable, the data source one included.
    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"]
            .as_array()
            .map(|v| v.iter().collect())
            .unwrap_or_default()
    }

    /// Every panel target's and every Prometheus annotation's query, unexpanded.
    pub fn queries(&self) -> Vec<Query> {
        let mut out = Vec::new();
        for p in self.panels() {
            let title = p["title"].as_str().unwrap_or_default();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(Query {
                        source: title.to_string(),
                        expr: expr.to_string(),
                        instant: t["instant"].as_bool().unwrap_or(false),
                        annotation: false,
                    });
                }
            }
        }
        for a in self.json["annotations"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(expr) = a["expr"].as_str() {
                out.push(Query {
                    source: format!("annotation: {}", a["name"].as_str().unwrap_or_default()),
                    expr: expr.to_string(),
                    instant: false,
                    annotation: true,
                });
            }
        }
        out
    }
}

fn is_templated_datasource(v: &Value) -> bool {
    v["uid"] == DATASOURCE_UID && v["type"] == "prometheus"
}

/// Grafana's own annotation source ("Annotations & Alerts"), the one fixed reference allowed.
fn is_builtin_grafana(v: &Value) -> bool {
    v["type"] == "grafana" && v["uid"] == "-- Grafana --"
}

/// Every `datasource` value anywhere in the JSON, with its path.
fn datasource_refs<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{path}.{k}");
                if k == "datasource" {
                    out.push((p.clone(), child));
                }
                datasource_refs(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                datasource_refs(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The lint: every problem found, as a message naming the panel or field. Empty when clean.
pub fn lint(d: &Dashboard) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |m: String| problems.push(m);
    let j = &d.json;

    let uid = d.uid();
    if uid.is_empty()
        || uid.len() > 40
        || !uid
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        problem(format!(
            "uid {uid:?} must be a stable, short, lowercase id (at most 40 of a-z, 0-9, -)"
        ));
    }
    if d.title().is_empty() {
        problem("title is missing".into());
    }
    if !j["id"].is_null() {
        problem("id must be null so the dashboard imports into any Grafana".into());
    }
    if j.get("__inputs").is_some() || j.to_string().contains("${DS_") {
        problem("uses ${DS_...} import inputs, which file provisioning does not resolve; use the datasource variable".into());
    }
    if !j["schemaVersion"].is_u64() {
        problem("schemaVersion is missing".into());
    }

    let vars = d.variables();
    let ds_vars: Vec<&&Value> = vars.iter().filter(|v| v["type"] == "datasource").collect();
    match ds_vars.as_slice() {
        [v] if v["name"] == "datasource" && v["query"] == "prometheus" => {}
        _ => problem(
            "needs exactly one data source variable, named `datasource`, of type prometheus".into(),
        ),
    }
    let var_names: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    for v in &vars {
        if v["type"] == "query" && !is_templated_datasource(&v["datasource"]) {
            problem(format!(
                "variable {} must query the `datasource` variable",
                v["name"]
            ));
        }
    }

    let mut refs = Vec::new();
    datasource_refs(j, String::new(), &mut refs);
    for (path, v) in refs {
        if !(is_templated_datasource(v) || is_builtin_grafana(v) || path.contains(".templating.")) {
            problem(format!(
                "{path}: hard-coded data source {v}; use {{\"type\":\"prometheus\",\"uid\":\"{DATASOURCE_UID}\"}}"
            ));
        }
    }

    let mut ids = BTreeSet::new();
    for p in d.panels() {
        let title = p["title"].as_str().unwrap_or_default();
        let Some(id) = p["id"].as_u64() else {
            problem(format!("panel {title:?} has no numeric id"));
            continue;
        };
        if !ids.insert(id) {
            problem(format!("panel id {id} ({title:?}) is used twice"));
        }
        if p["type"] == "row" {
            continue;
        }
        if title.is_empty() {
            problem(format!("panel {id} has no title"));
        }
        if p["description"].as_str().unwrap_or_default().is_empty() {
            problem(format!("panel {title:?} has no description"));
        }
        if !p["gridPos"].is_object() {
            problem(format!("panel {title:?} has no gridPos"));
        }
        if !is_templated_datasource(&p["datasource"]) {
            problem(format!(
                "panel {title:?} does not use the datasource variable"
            ));
        }
        if p["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        {
            problem(format!("panel {title:?} has no unit"));
        }
        for t in threshold_problems(p) {
            problem(format!("panel {title:?}: {t}"));
        }
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if targets.is_empty() {
            problem(format!("panel {title:?} has no queries"));
        }
        let mut refs = BTreeSet::new();
        for t in targets {
            if !refs.insert(t["refId"].as_str().unwrap_or_default()) {
                problem(format!("panel {title:?} repeats a refId"));
            }
            if t["expr"].as_str().unwrap_or_default().trim().is_empty() {
                problem(format!("panel {title:?} has an empty query"));
            }
        }
    }

    for l in j["links"].as_array().into_iter().flatten() {
        let url = l["url"].as_str().unwrap_or_default();
        if !url.starts_with("/d/") {
            continue;
        }
        for needed in ["${__url_time_range}", "${datasource:queryparam}"] {
            if !url.contains(needed) {
                problem(format!("link {url:?} does not carry {needed}"));
            }
        }
        let (_, reads) = crate::grafana::link_variables(url);
        for r in reads {
            if !r.starts_with("__") && !var_names.contains(r.as_str()) {
                problem(format!(
                    "link {url:?} reads ${{{r}}}, which is not a variable of this dashboard"
                ));
            }
        }
    }

    let mut expand_vars: Vec<(&str, &str)> = GRAFANA_BUILTINS.to_vec();
    expand_vars.extend(var_names.iter().map(|n| (*n, "x")));
    for q in d.queries() {
        for range in promql::ranges(&q.expr) {
            if range != "$__rate_interval" && range != "$__range" {
                problem(format!(
                    "{}: range [{range}] must be [$__rate_interval] (or [$__range] for a total over the view): {}",
                    q.source, q.expr
                ));
            }
        }
        for var in q.expr.split('$').skip(1) {
            let name: String = var
                .trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.starts_with("__") && !var_names.contains(name.as_str()) {
                problem(format!(
                    "{}: uses ${name}, which is not a variable of this dashboard",
                    q.source
                ));
            }
        }
        match promql::selectors(&promql::expand(&q.expr, &expand_vars)) {
            Ok(sels) => {
                for s in sels {
                    if !s.has_matcher("job") {
                        problem(format!(
                            "{}: {} has no job matcher, so the dashboard mixes every job that exports it",
                            q.source, s.name
                        ));
                    }
                }
            }
            Err(e) => problem(format!("{}: {e}", q.source)),
        }
    }
    problems
}

/// Panel types whose colour comes from thresholds unless told otherwise. Without explicit
/// thresholds Grafana gives them its default: green, red from 80.
const THRESHOLD_COLOURED: [&str; 5] = [
    "stat",
    "gauge",
    "bargauge",
    "state-timeline",
    "status-history",
];

/// A panel's thresholds must be chosen, not Grafana's default, and every step above the base
/// must be explained in the description (its value as the reader sees it: 0.25 s as 250, 0.25
/// of percentunit as 25), so a colour change on screen always means something stated.
fn threshold_problems(p: &Value) -> Vec<String> {
    let defaults = &p["fieldConfig"]["defaults"];
    let drawn = defaults["custom"]["thresholdsStyle"]["mode"]
        .as_str()
        .is_some_and(|m| m != "off");
    let coloured = THRESHOLD_COLOURED.contains(&p["type"].as_str().unwrap_or_default());
    if !(drawn || coloured) {
        return Vec::new();
    }
    let Some(steps) = defaults["thresholds"]["steps"].as_array() else {
        return vec![
            "no explicit thresholds, so Grafana's default (red from 80) colours it".into(),
        ];
    };
    let description = p["description"].as_str().unwrap_or_default();
    let numbers: Vec<f64> = description
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.trim_end_matches('.').parse().ok())
        .collect();
    let scales: &[f64] = match defaults["unit"].as_str() {
        Some("percentunit") => &[100.0],
        Some("s") => &[1.0, 1000.0],
        _ => &[1.0],
    };
    steps
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .filter(|v| {
            !scales
                .iter()
                .any(|k| numbers.iter().any(|n| (n - v * k).abs() < 1e-9))
        })
        .map(|v| format!("threshold {v} is not explained in the description"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clean() -> Value {
        json!({
            "uid": "demo", "title": "Demo", "id": null, "schemaVersion": 39,
            "templating": {"list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {"name": "job", "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
                 "query": {"query": "label_values(up, job)"}}
            ]},
            "annotations": {"list": [
                {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "name": "Annotations & Alerts"}
            ]},
            "panels": [
                {"type": "row", "id": 1, "title": "Row", "panels": []},
                {"type": "timeseries", "id": 2, "title": "Rate", "description": "d",
                 "gridPos": {"h": 8, "w": 12, "x": 0, "y": 1},
                 "datasource": {"type": "prometheus", "uid": "${datasource}"},
                 "fieldConfig": {"defaults": {"unit": "reqps"}},
                 "targets": [{"refId": "A", "datasource": {"type": "prometheus", "uid": "${datasource}"},
                              "expr": "sum(rate(x_total{job=~\"$job\"}[$__rate_interval]))"}]}
            ]
        })
    }

    fn lint_json(j: Value) -> Vec<String> {
        lint(&Dashboard {
            path: "t.json".into(),
            json: j,
        })
    }

    #[test]
    fn a_clean_dashboard_passes() {
        assert_eq!(lint_json(clean()), Vec::<String>::new());
        // Explained thresholds, in the unit the reader sees, pass.
        let mut j = clean();
        j["panels"][1]["type"] = json!("stat");
        j["panels"][1]["fieldConfig"]["defaults"] = json!({"unit": "s", "thresholds": {
            "mode": "absolute", "steps": [{"color": "green", "value": null}, {"color": "red", "value": 0.25}]}});
        j["panels"][1]["description"] = json!("Red above the 250 ms SLO.");
        j["links"] = json!([{"type": "link",
            "url": "/d/other/x?${__url_time_range}&${datasource:queryparam}&var-job=${job:percentencode}"}]);
        assert_eq!(lint_json(j), Vec::<String>::new());
    }

    #[test]
    fn each_rule_catches_its_fault() {
        type Breakage = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Breakage)> = vec![
            (
                "hard-coded data source",
                Box::new(|j| {
                    j["panels"][1]["targets"][0]["datasource"] =
                        json!({"type": "prometheus", "uid": "PBFA97CFB590B2093"})
                }),
            ),
            (
                "does not use the datasource variable",
                Box::new(|j| j["panels"][1]["datasource"] = json!("Prometheus")),
            ),
            (
                "has no unit",
                Box::new(|j| j["panels"][1]["fieldConfig"]["defaults"] = json!({})),
            ),
            ("used twice", Box::new(|j| j["panels"][1]["id"] = json!(1))),
            (
                "must be [$__rate_interval]",
                Box::new(|j| {
                    j["panels"][1]["targets"][0]["expr"] = json!("rate(x_total{job=~\"$job\"}[5m])")
                }),
            ),
            (
                "no job matcher",
                Box::new(|j| {
                    j["panels"][1]["targets"][0]["expr"] = json!("rate(x_total[$__rate_interval])")
                }),
            ),
            (
                "not a variable",
                Box::new(|j| j["panels"][1]["targets"][0]["expr"] = json!("x{job=~\"$instance\"}")),
            ),
            (
                "invalid PromQL",
                Box::new(|j| j["panels"][1]["targets"][0]["expr"] = json!("sum(x{job=~\"$job\"}")),
            ),
            (
                "exactly one data source variable",
                Box::new(|j| j["templating"]["list"][0]["name"] = json!("ds")),
            ),
            (
                "import inputs",
                Box::new(|j| j["__inputs"] = json!([{"name": "DS_PROMETHEUS"}])),
            ),
            ("id must be null", Box::new(|j| j["id"] = json!(7))),
            ("stable, short", Box::new(|j| j["uid"] = json!("Not A Uid"))),
            (
                "no description",
                Box::new(|j| j["panels"][1]["description"] = json!("")),
            ),
            (
                "Grafana's default (red from 80)",
                Box::new(|j| j["panels"][1]["type"] = json!("stat")),
            ),
            (
                "threshold 0.25 is not explained",
                Box::new(|j| {
                    j["panels"][1]["fieldConfig"]["defaults"] = json!({"unit": "percentunit",
                        "thresholds": {"mode": "absolute", "steps": [
                            {"color": "red", "value": null}, {"color": "green", "value": 0.25}]}});
                    j["panels"][1]["type"] = json!("stat");
                    j["panels"][1]["description"] = json!("green above 0.25");
                }),
            ),
            (
                "does not carry ${datasource:queryparam}",
                Box::new(|j| {
                    j["links"] = json!([{"type": "link", "url": "/d/other/x?${__url_time_range}"}])
                }),
            ),
            (
                "reads ${nope}",
                Box::new(|j| {
                    j["links"] = json!([{"type": "link",
                    "url": "/d/other/x?${__url_time_range}&${datasource:queryparam}&var-job=${nope}"}])
                }),
            ),
        ];
        for (expected, break_it) in cases {
            let mut j = clean();
            break_it(&mut j);
            let problems = lint_json(j);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "expected a problem containing {expected:?}, got {problems:?}"
            );
        }
    }
}
