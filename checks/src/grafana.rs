//! Grafana's side of a dashboard on a Prometheus data source: the template variables resolved
//! in order against a real Prometheus, the way Grafana 12 resolves them on load (a
//! `label_values(...)` query through the label-values API over the dashboard's time range, the
//! variable's sort, "All" selected where it is offered, the first option elsewhere),
//! and their values written into a query the way Grafana's Prometheus data source writes them
//! (regex-escaped and joined for multi-value and "All" variables, plain otherwise). The
//! escaping follows `prometheusRegularEscape` and `prometheusSpecialRegexEscape` (classic
//! behaviour) of Grafana's Prometheus data source.

use std::time::Duration;

use serde_json::Value;

use crate::dashboards::Dashboard;
use crate::prometheus::Prometheus;
use crate::promql;

/// One template variable after resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub name: String,
    /// The options Grafana offers, "All" not included.
    pub options: Vec<String>,
    /// What `$name` becomes in a query.
    pub value: String,
}

/// A `label_values` variable query: `label_values(label)` or `label_values(selector, label)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelValues {
    pub selector: Option<String>,
    pub label: String,
}

/// Reads a `label_values(...)` variable query; anything else is an error, since the bundled
/// dashboards use no other kind.
pub fn parse_label_values(query: &str) -> Result<LabelValues, String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .ok_or_else(|| format!("not a label_values(...) query: {query:?}"))?;
    let (selector, label) = match inner.rfind(',') {
        Some(comma) => (Some(inner[..comma].trim().to_string()), &inner[comma + 1..]),
        None => (None, inner),
    };
    let label = label.trim().to_string();
    if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad label in {query:?}"));
    }
    Ok(LabelValues { selector, label })
}

/// A value as Grafana writes it into a Prometheus query for a single-value variable.
pub fn regular_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\\\'")
}

/// A value as Grafana writes it for a multi-value or "All" variable: a regex literal inside a
/// PromQL string.
pub fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// `$name` for `selected` options of a variable (Grafana's `interpolateQueryExpr`).
pub fn format_values(selected: &[String], multi_or_all: bool) -> String {
    if !multi_or_all {
        return selected
            .first()
            .map(|v| regular_escape(v))
            .unwrap_or_default();
    }
    let escaped: Vec<String> = selected.iter().map(|v| regex_escape(v)).collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// The options of a variable from its raw values: duplicates dropped, then its sort. A
/// variable regex is refused rather than half-modelled (Grafana keeps the whole value without
/// a capture group, anchors a regex not written as /.../, honours flags and named groups): the
/// bundled dashboards use none.
pub fn options(raw: Vec<String>, regex: &str, sort: u64) -> Result<Vec<String>, String> {
    if !regex.is_empty() {
        return Err(format!(
            "variable regex {regex:?}: not modelled by the checks; resolve it in Grafana"
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for v in raw {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    match sort {
        0 => {}
        1 => out.sort(),
        2 => out.sort_by(|a, b| b.cmp(a)),
        5 => out.sort_by_key(|v| v.to_lowercase()),
        6 => out.sort_by_key(|v| std::cmp::Reverse(v.to_lowercase())),
        other => return Err(format!("sort {other} is not modelled")),
    }
    Ok(out)
}

/// The dashboard's default time range (`time.from`, `now-30m` style) as a duration back from
/// now, for the label-values calls.
pub fn time_range(d: &Dashboard) -> Result<Duration, String> {
    let from = d.json["time"]["from"].as_str().unwrap_or("now-6h");
    let back = from
        .strip_prefix("now-")
        .ok_or_else(|| format!("time.from {from:?} is not relative to now"))?;
    crate::rules::parse_duration(back)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("time.from {from:?}"))
}

/// Every query variable of `d`, resolved in order against `prom`, each with the values of the
/// ones before it. The data source variable resolves to Prometheus itself and is left out.
pub async fn resolve(d: &Dashboard, prom: &Prometheus) -> Result<Vec<Resolved>, String> {
    let window = time_range(d)?;
    let mut done: Vec<Resolved> = Vec::new();
    for v in d.variables() {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        match v["type"].as_str() {
            Some("datasource") => continue,
            Some("query") => {}
            other => return Err(format!("variable {name}: type {other:?} is not modelled")),
        }
        let query = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .ok_or_else(|| format!("variable {name} has no query"))?;
        let earlier: Vec<(&str, &str)> = done
            .iter()
            .map(|r| (r.name.as_str(), r.value.as_str()))
            .collect();
        let lv = parse_label_values(&promql::expand(query, &earlier))?;
        let raw = prom
            .label_values(&lv.label, lv.selector.as_deref(), window)
            .await?;
        let opts = options(
            raw,
            v["regex"].as_str().unwrap_or_default(),
            v["sort"].as_u64().unwrap_or(0),
        )?;
        let include_all = v["includeAll"].as_bool().unwrap_or(false);
        let multi = v["multi"].as_bool().unwrap_or(false);
        let value = match (include_all, v["allValue"].as_str()) {
            (true, Some(all)) if !all.is_empty() => all.to_string(),
            (true, _) => format_values(&opts, true),
            (false, _) => format_values(&opts[..opts.len().min(1)], multi),
        };
        done.push(Resolved {
            name,
            options: opts,
            value,
        });
    }
    Ok(done)
}

/// The resolved variables and Grafana's built-in ones, as `promql::expand` takes them.
pub fn expansion(resolved: &[Resolved]) -> Vec<(&str, &str)> {
    let mut vars: Vec<(&str, &str)> = crate::dashboards::GRAFANA_BUILTINS.to_vec();
    vars.extend(resolved.iter().map(|r| (r.name.as_str(), r.value.as_str())));
    vars
}

/// The `var-NAME=` parameters a dashboard link's URL sets, and the `${...}` variables it reads.
pub fn link_variables(url: &str) -> (Vec<String>, Vec<String>) {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let sets = query
        .split('&')
        .filter_map(|p| p.strip_prefix("var-"))
        .filter_map(|p| p.split_once('=').map(|(n, _)| n.to_string()))
        .collect();
    let reads = url
        .split("${")
        .skip(1)
        .filter_map(|r| r.split_once('}'))
        .map(|(inner, _)| inner.split(':').next().unwrap_or_default().to_string())
        .collect();
    (sets, reads)
}

/// The dashboard links of `d` as (target uid, url), for links of type "link" into `/d/<uid>/`.
pub fn links(d: &Dashboard) -> Vec<(String, String)> {
    d.json["links"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l: &Value| {
            let url = l["url"].as_str()?;
            let uid = url.strip_prefix("/d/")?.split(['/', '?']).next()?;
            Some((uid.to_string(), url.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_label_values_queries() {
        assert_eq!(
            parse_label_values(r#"label_values(up{job=~"a|b"}, instance)"#),
            Ok(LabelValues {
                selector: Some(r#"up{job=~"a|b"}"#.into()),
                label: "instance".into()
            })
        );
        assert_eq!(
            parse_label_values("label_values(job)"),
            Ok(LabelValues {
                selector: None,
                label: "job".into()
            })
        );
        assert!(parse_label_values("query_result(up)").is_err());
        assert!(parse_label_values("label_values(up, )").is_err());
    }

    #[test]
    fn formats_values_as_grafana_does() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // Single value: written as it is (only backslashes and quotes escaped).
        assert_eq!(
            format_values(&v(&["monitoring/kubernetes-pods"]), false),
            "monitoring/kubernetes-pods"
        );
        assert_eq!(
            format_values(&v(&["10.0.0.5:5001"]), false),
            "10.0.0.5:5001"
        );
        // Multi-value or All: regex-escaped, backslashes doubled for the PromQL string.
        assert_eq!(
            format_values(&v(&["10.0.0.5:5001"]), true),
            r"10\\.0\\.0\\.5:5001"
        );
        assert_eq!(format_values(&v(&["a.b", "c|d"]), true), r"(a\\.b|c\\|d)");
        assert_eq!(format_values(&[], false), "");
    }

    #[test]
    fn options_are_sorted_and_a_regex_is_refused() {
        let raw = vec!["b:1".to_string(), "a:2".into(), "c:3".into(), "a:2".into()];
        let sorted = |sort| options(raw.clone(), "", sort).unwrap_or_default();
        assert_eq!(sorted(1), ["a:2", "b:1", "c:3"]);
        assert_eq!(sorted(0), ["b:1", "a:2", "c:3"]);
        assert_eq!(sorted(2), ["c:3", "b:1", "a:2"]);
        assert!(options(raw.clone(), "/([ab]):.*/", 0).is_err());
        assert!(options(raw, "", 3).is_err());
    }

    #[test]
    fn link_urls_name_what_they_set_and_read() {
        let (sets, reads) = link_variables(
            "/d/order-loadgen/x?${__url_time_range}&${datasource:queryparam}&var-server_job=${job:percentencode}",
        );
        assert_eq!(sets, ["server_job"]);
        assert_eq!(reads, ["__url_time_range", "datasource", "job"]);
    }
}
