//! A rehearsal of the Dockerfile's build stage on the host, for machines with no Docker
//! engine: the instructions are parsed, the files `COPY` takes from the build context (less
//! what `.dockerignore` excludes) are copied into an empty directory standing for the
//! stage's root, and the `RUN` steps run there with the stage's `ARG` and `ENV` values. Cache
//! mounts become persistent directories, as BuildKit keeps them; the crates registry mount is
//! the host's own registry. The host toolchain stands in for the build image, so the
//! rehearsal insists it is the release the image pins. What it cannot show is said in the
//! README: the base images themselves, and the runtime image's file system. It covers the
//! instructions this project's Dockerfile uses (`FROM`, `ARG`, `ENV` one pair per line,
//! `WORKDIR`, `COPY` of context paths, `RUN` with cache mounts) and refuses any other; symlinks
//! in the context are not copied.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

pub use crate::dockerignore::IgnoreRules;

/// Why a rehearsal could not run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    #[error("Dockerfile: {0}")]
    Parse(String),
    #[error(transparent)]
    Ignore(#[from] crate::dockerignore::IgnoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the rehearsal cannot stand in for this step: {0}")]
    Unsupported(String),
    #[error("RUN step failed ({status}): {step}")]
    Run { step: String, status: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RehearsalError + '_ {
    move |source| RehearsalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One instruction, continuation lines joined: `COPY`, `["--from=build", "/src/out/x", "/"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

/// The instructions of a Dockerfile, without comments and parser directives.
pub fn parse(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let text = std::mem::take(&mut current);
                let text = text.trim();
                let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_string(),
                });
            }
        }
    }
    out
}

/// Where the rehearsal keeps what BuildKit would keep between builds (cache mounts).
#[derive(Debug, Clone)]
pub struct Caches {
    /// Cache mounts inside the stage's file system (`/src/target`) live below this, and so
    /// does the cargo home standing for the image's `/usr/local/cargo`.
    pub dir: PathBuf,
    /// The host's crates registry, mounted where the image's registry cache mount is.
    pub registry: PathBuf,
}

/// The outcome: the files the final stage copies out of the rehearsed build stage.
#[derive(Debug)]
pub struct Rehearsal {
    /// The final stage's destination path -> the rehearsed file on the host.
    pub outputs: BTreeMap<String, PathBuf>,
}

/// The image's cargo home in the official Rust images.
const IMAGE_CARGO_HOME: &str = "/usr/local/cargo";

/// Runs the build stage that the final stage copies from. `root` must be an empty directory.
pub fn rehearse(
    context: &Path,
    root: &Path,
    caches: &Caches,
    build_args: &BTreeMap<String, String>,
) -> Result<Rehearsal, RehearsalError> {
    let dockerfile = std::fs::read_to_string(context.join("Dockerfile"))
        .map_err(io(&context.join("Dockerfile")))?;
    let ignore_path = context.join(".dockerignore");
    let ignore = IgnoreRules::parse(&std::fs::read_to_string(&ignore_path).unwrap_or_default())?;
    let instructions = parse(&dockerfile);
    let stages = stages(&instructions);
    let (_, last) = stages
        .last()
        .ok_or_else(|| RehearsalError::Parse("no FROM".into()))?;
    let copies: Vec<(String, Vec<String>, String)> = last
        .iter()
        .filter(|i| i.keyword == "COPY")
        .filter_map(|i| {
            let words = shell_words(&i.args);
            let from = words.first()?.strip_prefix("--from=")?.to_string();
            let (dest, sources) = words[1..].split_last()?;
            Some((from, sources.to_vec(), dest.clone()))
        })
        .collect();
    let build_name = copies
        .first()
        .map(|(from, _, _)| from.clone())
        .ok_or_else(|| RehearsalError::Parse("the final stage copies from no stage".into()))?;
    let (_, build) = stages
        .iter()
        .find(|(name, _)| name.as_deref() == Some(build_name.as_str()))
        .ok_or_else(|| RehearsalError::Parse(format!("no stage named {build_name}")))?;

    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut workdir = "/".to_string();
    for ins in build.iter() {
        let args = substitute(&ins.args, &vars);
        match ins.keyword.as_str() {
            "FROM" => {}
            "ARG" => {
                let (name, default) = args.split_once('=').unwrap_or((&args, ""));
                let value = build_args.get(name).cloned().unwrap_or(default.to_string());
                vars.insert(name.to_string(), value);
            }
            "ENV" => {
                let (name, value) = args
                    .split_once('=')
                    .filter(|(_, v)| !v.contains(char::is_whitespace))
                    .ok_or_else(|| {
                        RehearsalError::Unsupported(format!("ENV {args}: one NAME=value per line"))
                    })?;
                vars.insert(name.to_string(), value.to_string());
                env.insert(name.to_string(), value.to_string());
            }
            "WORKDIR" => {
                workdir = resolve(&workdir, &args);
                let dir = host_path(root, &workdir);
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            }
            "COPY" => {
                let words = shell_words(&args);
                if words.iter().any(|w| w.starts_with("--")) {
                    return Err(RehearsalError::Unsupported(format!("COPY {args}")));
                }
                let (dest, sources) = words
                    .split_last()
                    .ok_or_else(|| RehearsalError::Parse(format!("COPY {args}")))?;
                let dest = host_path(root, &resolve(&workdir, dest));
                for source in sources {
                    copy_context(context, &ignore, Path::new(source), &dest)?;
                }
            }
            "RUN" => run_step(&args, root, &workdir, caches, &vars, &env)?,
            other => return Err(RehearsalError::Unsupported(format!("{other} {args}"))),
        }
    }

    let mut outputs = BTreeMap::new();
    for (_, sources, dest) in copies {
        for source in sources {
            let on_host = host_path(root, &source);
            if !on_host.is_file() {
                return Err(RehearsalError::Parse(format!(
                    "the final stage copies {source}, which the build stage did not make"
                )));
            }
            let name = Path::new(&source)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let target = if dest.ends_with('/') {
                format!("{dest}{name}")
            } else {
                dest.clone()
            };
            outputs.insert(target, on_host);
        }
    }
    Ok(Rehearsal { outputs })
}

/// The stages in order: (`AS` name, instructions including the `FROM`). Global `ARG`s before
/// the first `FROM` are left out: they only choose base images, which the host stands in for.
fn stages(instructions: &[Instruction]) -> Vec<(Option<String>, Vec<Instruction>)> {
    let mut out: Vec<(Option<String>, Vec<Instruction>)> = Vec::new();
    for ins in instructions {
        if ins.keyword == "FROM" {
            let words: Vec<&str> = ins.args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            out.push((name, vec![ins.clone()]));
        } else if let Some((_, body)) = out.last_mut() {
            body.push(ins.clone());
        }
    }
    out
}

/// Expands `${NAME}` and `$NAME` from the stage's variables, as Docker does in instructions.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// Splits on white space, honouring a JSON-style `[...]` form and double quotes.
fn shell_words(args: &str) -> Vec<String> {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(args) {
        return list;
    }
    args.split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect()
}

/// A container path made absolute against the working directory.
fn resolve(workdir: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), path)
    }
}

/// Where a container path lives under the rehearsal's root.
fn host_path(root: &Path, container: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in Path::new(container).components() {
        if let Component::Normal(part) = c {
            p.push(part);
        }
    }
    p
}

/// Copies `source` from the context into `dest` (a directory), skipping ignored paths.
fn copy_context(
    context: &Path,
    ignore: &IgnoreRules,
    source: &Path,
    dest: &Path,
) -> Result<(), RehearsalError> {
    let start = context.join(source);
    let mut stack = vec![start.clone()];
    while let Some(path) = stack.pop() {
        let rel = path.strip_prefix(context).unwrap_or(&path);
        if !rel.as_os_str().is_empty() && ignore.excludes(rel) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        let under = path.strip_prefix(&start).unwrap_or(Path::new(""));
        let target = if start.is_dir() {
            dest.join(under)
        } else {
            dest.join(path.file_name().unwrap_or_default())
        };
        if meta.is_dir() {
            std::fs::create_dir_all(&target).map_err(io(&target))?;
            for entry in std::fs::read_dir(&path).map_err(io(&path))? {
                stack.push(entry.map_err(io(&path))?.path());
            }
        } else if meta.is_file() {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::copy(&path, &target).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Runs one `RUN` step with `sh -c` in the working directory, its cache mounts in place.
fn run_step(
    args: &str,
    root: &Path,
    workdir: &str,
    caches: &Caches,
    vars: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Result<(), RehearsalError> {
    let mut rest = args.trim();
    let mut registry_mounted = false;
    while let Some(flag) = rest.strip_prefix("--mount=") {
        let (spec, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        rest = tail.trim_start();
        let options: BTreeMap<&str, &str> = spec
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        if options.get("type") != Some(&"cache") {
            return Err(RehearsalError::Unsupported(format!("--mount={spec}")));
        }
        let target = options
            .get("target")
            .ok_or_else(|| RehearsalError::Parse(format!("--mount={spec}: no target")))?;
        if let Some(sub) = target.strip_prefix(IMAGE_CARGO_HOME) {
            if sub != "/registry" {
                return Err(RehearsalError::Unsupported(format!("--mount={spec}")));
            }
            registry_mounted = true;
        } else if target.starts_with(workdir) {
            let cache = caches
                .dir
                .join(target.trim_start_matches('/').replace('/', "_"));
            std::fs::create_dir_all(&cache).map_err(io(&cache))?;
            let mount = host_path(root, target);
            if !mount.exists() {
                std::os::unix::fs::symlink(&cache, &mount).map_err(io(&mount))?;
            }
        } else {
            return Err(RehearsalError::Unsupported(format!("--mount={spec}")));
        }
    }
    let command = substitute(rest, vars);
    if command.split_whitespace().any(|w| w.starts_with('/')) {
        return Err(RehearsalError::Unsupported(format!(
            "RUN {command}: absolute paths would reach the host; use paths below WORKDIR"
        )));
    }
    // The image's cargo home is empty but for what the RUN mounts: a cargo home of the
    // rehearsal's own (so the host's cargo config does not apply), its registry the host's
    // when the step mounts the registry cache.
    let cargo_home = caches.dir.join("cargo-home");
    let registry = cargo_home.join("registry");
    std::fs::create_dir_all(&cargo_home).map_err(io(&cargo_home))?;
    let _ = std::fs::remove_file(&registry);
    if registry_mounted {
        std::os::unix::fs::symlink(&caches.registry, &registry).map_err(io(&registry))?;
    }
    // A clean environment, as in a container: the toolchain's own variables, then the stage's.
    let inherited = ["PATH", "HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k, v)));
    let status = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(host_path(root, workdir))
        .env_clear()
        .envs(inherited)
        .envs(env)
        .env("CARGO_HOME", &cargo_home)
        .status()
        .map_err(io(Path::new("sh")))?;
    if !status.success() {
        return Err(RehearsalError::Run {
            step: command,
            status: status.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_join_continuations_and_skip_comments() {
        let ins = parse("# c\nFROM x AS build\nRUN a \\\n # inner\n && b\nCOPY [\"a\", \"/b/\"]\n");
        assert_eq!(ins.len(), 3);
        assert_eq!(ins[1].keyword, "RUN");
        assert!(ins[1].args.contains("a") && ins[1].args.contains("&& b"));
        assert_eq!(shell_words(&ins[2].args), vec!["a", "/b/"]);
    }
}
