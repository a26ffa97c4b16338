//! PromQL as the checks see it: Grafana template variables expanded into a plain query, and
//! the metric selectors of a query (name and label matchers) read from a real PromQL parser,
//! so contract checks compare names, not substrings.

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};

/// One vector selector: `name{label op value, ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// Empty for a selector by labels only (`{job="x"}`).
    pub name: String,
    pub matchers: Vec<LabelMatcher>,
    /// The range of a range selector (`name[5m]`); `None` for an instant selector.
    pub range: Option<std::time::Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelMatcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: &'static str,
    pub value: String,
}

impl Selector {
    /// The label values this selector requires exactly (`label="value"`).
    pub fn equalities(&self) -> impl Iterator<Item = (&str, &str)> {
        self.matchers
            .iter()
            .filter(|m| m.op == "=")
            .map(|m| (m.label.as_str(), m.value.as_str()))
    }

    pub fn has_matcher(&self, label: &str) -> bool {
        self.matchers.iter().any(|m| m.label == label)
    }
}

/// Replaces Grafana variables (`$name`, `${name}`, `[[name]]`) with the given values.
/// Longer names go first, so `$job` never eats the start of `$job_name`.
pub fn expand(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_string();
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("[[{name}]]"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// Every vector selector in `expr` (including those inside range selectors and subqueries).
pub fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    struct Collect(Vec<Selector>);
    impl ExprVisitor for Collect {
        type Error = String;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
            let (vs, range) = match e {
                Expr::VectorSelector(vs) => (vs, None),
                Expr::MatrixSelector(ms) => (&ms.vs, Some(ms.range)),
                _ => return Ok(true),
            };
            let matchers: Vec<LabelMatcher> = vs
                .matchers
                .matchers
                .iter()
                .chain(vs.matchers.or_matchers.iter().flatten())
                .map(|m| LabelMatcher {
                    label: m.name.clone(),
                    op: match m.op {
                        MatchOp::Equal => "=",
                        MatchOp::NotEqual => "!=",
                        MatchOp::Re(_) => "=~",
                        MatchOp::NotRe(_) => "!~",
                    },
                    value: m.value.clone(),
                })
                .collect();
            let name = vs
                .name
                .clone()
                .or_else(|| {
                    matchers
                        .iter()
                        .find(|m| m.label == "__name__" && m.op == "=")
                        .map(|m| m.value.clone())
                })
                // `{job="x"}` selects every metric of the job: valid, with no name to check.
                .unwrap_or_default();
            self.0.push(Selector {
                name,
                matchers,
                range,
            });
            Ok(true)
        }
    }
    let ast = parser::parse(expr).map_err(|e| format!("invalid PromQL {expr:?}: {e}"))?;
    let mut c = Collect(Vec::new());
    walk_expr(&mut c, &ast)?;
    Ok(c.0)
}

/// The contents of every `[...]` in a query: range and subquery durations.
pub fn ranges(expr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) => {
                out.push(&after[..close]);
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    out
}

/// The metric family a sample name belongs to: histogram and summary series share one.
pub fn family(name: &str) -> &str {
    ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_every_variable_syntax_longest_first() {
        let vars = [
            ("job", "order-server"),
            ("job_name", "x"),
            ("__rate_interval", "15s"),
        ];
        assert_eq!(
            expand(
                r#"rate(a{job=~"$job", j2="${job}", j3="[[job]]", n="$job_name"}[$__rate_interval])"#,
                &vars
            ),
            r#"rate(a{job=~"order-server", j2="order-server", j3="order-server", n="x"}[15s])"#
        );
    }

    #[test]
    fn finds_selectors_inside_functions_and_binary_operators() {
        let s = selectors(
            r#"histogram_quantile(0.99, sum by (le) (rate(x_bucket{job="a", le="0.25"}[5m]))) / on() group_left absent(up{job=~"b"})"#,
        )
        .expect("parses");
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["x_bucket", "up"]);
        assert_eq!(
            s[0].equalities().collect::<Vec<_>>(),
            [("job", "a"), ("le", "0.25")]
        );
        assert!(s[1].has_matcher("job"));
        assert_eq!(s[0].range, Some(std::time::Duration::from_secs(300)));
        assert_eq!(s[1].range, None);
        assert!(!s[1].equalities().any(|_| true));
    }

    #[test]
    fn rejects_invalid_promql() {
        assert!(selectors("sum(rate(x[5m])").is_err());
    }

    #[test]
    fn ranges_and_families() {
        assert_eq!(
            ranges("rate(a[$__rate_interval]) + max_over_time(b[5m:1m])"),
            ["$__rate_interval", "5m:1m"]
        );
        assert_eq!(family("x_seconds_bucket"), "x_seconds");
        assert_eq!(family("orders_total"), "orders_total");
    }
}
