//! `.dockerignore` as Docker reads it: patterns anchored at the context root, `*` within one
//! path part, `**` across parts, a match on a directory covering everything below it, and `!`
//! re-including what an earlier pattern left out (but not below a directory left out whole,
//! where Docker would still look).

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

#[derive(Debug, thiserror::Error)]
#[error(".dockerignore: bad pattern {pattern:?}: {source}")]
pub struct IgnoreError {
    pattern: String,
    source: globset::Error,
}

/// The rules of one `.dockerignore`, in order.
#[derive(Debug)]
pub struct IgnoreRules {
    rules: Vec<(GlobMatcher, bool)>,
}

impl IgnoreRules {
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let mut rules = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, pattern) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let cleaned = pattern.trim_matches('/');
            let glob = GlobBuilder::new(cleaned)
                .literal_separator(true)
                .build()
                .map_err(|source| IgnoreError {
                    pattern: line.to_string(),
                    source,
                })?;
            rules.push((glob.compile_matcher(), negated));
        }
        Ok(IgnoreRules { rules })
    }

    /// Whether `rel` (a path relative to the context root) is left out of the context.
    pub fn excludes(&self, rel: &Path) -> bool {
        let mut excluded = false;
        for (matcher, negated) in &self.rules {
            if rel
                .ancestors()
                .any(|a| !a.as_os_str().is_empty() && matcher.is_match(a))
            {
                excluded = !negated;
            }
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_anchors_at_the_root_and_covers_directories() {
        let rules = IgnoreRules::parse("target/\n*.md\n**/*.profraw\n!keep.md\n").expect("rules");
        assert!(rules.excludes(Path::new("target")));
        assert!(rules.excludes(Path::new("target/release/x")));
        assert!(rules.excludes(Path::new("README.md")));
        assert!(
            !rules.excludes(Path::new("docs/README.md")),
            "* stays in one part"
        );
        assert!(rules.excludes(Path::new("a/b/c.profraw")));
        assert!(!rules.excludes(Path::new("keep.md")), "! re-includes");
        assert!(!rules.excludes(Path::new("server/src/main.rs")));
    }
}
