//! The compose stack's own start-up of a service, for running it outside Docker: the
//! service's `command` from `docker-compose.yml` with each container path it names replaced
//! by a host path, so Prometheus and Alertmanager run with the flags the stack ships.

use std::path::Path;

use yaml_rust2::YamlLoader;

/// The `command` list of `service` in `<root>/docker-compose.yml`, with every argument's
/// container path prefix in `mounts` (container path, host path) replaced. A service without
/// a command list, or a mount that no argument uses, is an error: the shipped file changed
/// under the check.
pub fn command(
    root: &Path,
    service: &str,
    mounts: &[(&str, &Path)],
) -> Result<Vec<String>, String> {
    let path = root.join("docker-compose.yml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs = YamlLoader::load_from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let list = docs
        .first()
        .and_then(|d| d["services"][service]["command"].as_vec())
        .ok_or_else(|| format!("compose service {service} has no command list"))?;
    let mut used = vec![false; mounts.len()];
    let args = list
        .iter()
        .map(|a| {
            let mut arg = a
                .as_str()
                .ok_or_else(|| format!("{service}: command item {a:?} is not a string"))?
                .to_string();
            for (i, (container, host)) in mounts.iter().enumerate() {
                if let Some((flag, value)) = arg.split_once('=') {
                    if let Some(rest) = value.strip_prefix(container) {
                        if rest.is_empty() || rest.starts_with('/') {
                            arg = format!("{flag}={}{rest}", host.display());
                            used[i] = true;
                            break;
                        }
                    }
                }
            }
            Ok(arg)
        })
        .collect::<Result<Vec<String>, String>>()?;
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(format!(
            "{service}: no command argument uses {}",
            mounts[i].0
        ));
    }
    Ok(args)
}
