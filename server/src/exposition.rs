//! A small reader of the Prometheus text exposition format (0.0.4): samples with their labels,
//! plus the HELP and TYPE of each family. Tests and the load generator use it to check what a
//! server exports without comparing raw text, whose series order is not stable.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub help: BTreeMap<String, String>,
    pub types: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {reason}: {text:?}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
    pub text: String,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut out = Exposition::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let err = |reason| ParseError {
                line: i + 1,
                reason,
                text: raw.to_string(),
            };
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                out.help.insert(name.to_string(), help.to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest
                    .split_once(' ')
                    .ok_or_else(|| err("TYPE without a type"))?;
                out.types.insert(name.to_string(), ty.to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            out.samples
                .push(parse_sample(line).ok_or_else(|| err("malformed sample"))?);
        }
        Ok(out)
    }

    /// Samples of `name` whose labels include every pair in `labels`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The value of the one sample matching `name` and `labels`, if exactly one matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut it = self.select(name, labels);
        let first = it.next()?;
        it.next().is_none().then_some(first.value)
    }

    /// Sum over every sample matching `name` and `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.select(name, labels).map(|s| s.value).sum()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let (n, r) = line.split_once(' ')?;
            (n, BTreeMap::new(), r)
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

fn parse_labels(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',' | ' ')) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim().to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_families_labels_and_escapes() {
        let text = "# HELP a_total Things.\n# TYPE a_total counter\n\
                    a_total{x=\"1\",y=\"q\\\"uote\"} 3\nb 2.5\n\
                    c_bucket{le=\"+Inf\"} 7\nd{v=\"a,b\"} +Inf\n";
        let e = Exposition::parse(text).expect("parses");
        assert_eq!(e.help["a_total"], "Things.");
        assert_eq!(e.types["a_total"], "counter");
        assert_eq!(e.value("a_total", &[("y", "q\"uote")]), Some(3.0));
        assert_eq!(e.value("b", &[]), Some(2.5));
        assert_eq!(e.value("c_bucket", &[("le", "+Inf")]), Some(7.0));
        assert_eq!(e.value("d", &[("v", "a,b")]), Some(f64::INFINITY));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Exposition::parse("a{x=1} 2\n").is_err());
        assert!(Exposition::parse("a not-a-number\n").is_err());
    }
}
