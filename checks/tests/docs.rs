//! The two READMEs: the Chinese one keeps up with the English one (same sections, the same
//! commands, every identifier the English one names), and the files they link exist.

use std::collections::BTreeSet;

use order_metrics_checks::repo_root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn headings(text: &str) -> Vec<usize> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.chars().take_while(|c| *c == '#').count())
        .collect()
}

/// Commands in the fenced shell blocks, without their comments.
fn commands(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            inside = t == "```sh";
            continue;
        }
        if inside {
            let cmd = t.split(" # ").next().unwrap_or_default().trim();
            let cmd = cmd.strip_prefix('#').map_or(cmd, |_| "");
            if !cmd.is_empty() {
                out.insert(cmd.to_string());
            }
        }
    }
    out
}

/// Everything in backticks outside code blocks.
fn identifiers(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim().starts_with("```") {
            inside = !inside;
            continue;
        }
        if inside {
            continue;
        }
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 1 && !part.is_empty() {
                out.insert(part.to_string());
            }
        }
    }
    out
}

#[test]
fn the_chinese_readme_matches_the_english_one() {
    let en = read("README.md");
    let zh = read("README.zh-CN.md");
    assert!(en.contains("(README.zh-CN.md)") && zh.contains("(README.md)"));
    assert_eq!(headings(&en), headings(&zh), "section structure differs");
    let en_cmds = commands(&en);
    let zh_cmds = commands(&zh);
    assert!(en_cmds.len() >= 15, "{en_cmds:?}");
    let missing: Vec<_> = en_cmds.difference(&zh_cmds).collect();
    assert!(
        missing.is_empty(),
        "commands missing from README.zh-CN.md: {missing:#?}"
    );
    let zh_ids = identifiers(&zh);
    let missing: Vec<_> = identifiers(&en)
        .into_iter()
        .filter(|id| !zh_ids.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "README.zh-CN.md does not mention: {missing:#?}"
    );
}

#[test]
fn files_the_readmes_link_exist() {
    for doc in ["README.md", "README.zh-CN.md", "RUNBOOK.md"] {
        let text = read(doc);
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap_or_default();
            if target.starts_with("http") || target.starts_with('#') || target.is_empty() {
                continue;
            }
            let path = target.split('#').next().unwrap_or_default();
            assert!(
                repo_root().join(path).exists(),
                "{doc} links {target}, which does not exist"
            );
        }
    }
}
