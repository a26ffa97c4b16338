//! The control API's options (`--control-addr`, `--control-token`, `--max-rate`) as the
//! command line takes them, validated once into a [`ControlConfig`]: a token is required
//! before the API may listen anywhere but loopback, because whoever reaches it can point the
//! load at the target.

use std::net::SocketAddr;

/// The control API's command-line options (flattened into the run's).
#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {
    /// Serve the live control API and its page here, e.g. 127.0.0.1:8089 (off by default).
    /// Any address but loopback needs --control-token.
    #[arg(long, env = "LOADGEN_CONTROL_ADDR", value_name = "ADDR")]
    pub control_addr: Option<SocketAddr>,

    /// Bearer token that every change through the control API must carry.
    #[arg(long, env = "LOADGEN_CONTROL_TOKEN", hide_env_values = true)]
    pub control_token: Option<String>,

    /// The highest total rate (requests/s, both types) a live change may ask for.
    #[arg(long, env = "LOADGEN_MAX_RATE", default_value_t = 100_000.0)]
    pub max_rate: f64,
}

/// The control API's validated options.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    pub addr: SocketAddr,
    pub token: Option<String>,
    pub max_rate: f64,
}

/// The longest token taken (it travels in a header).
const MAX_TOKEN_BYTES: usize = 1024;

/// Why the control options do not make a control API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("--control-addr {0} can be reached from other hosts, and whoever reaches it can drive load at the target: set --control-token (LOADGEN_CONTROL_TOKEN), or listen on 127.0.0.1")]
    Exposed(SocketAddr),
    #[error("--control-token must be 1 to 1024 visible ASCII characters (no spaces)")]
    Token,
    #[error("--max-rate must be a number above 0 and at most 10000000, got {0}")]
    MaxRate(String),
}

impl ControlArgs {
    /// The control API to start, if any.
    pub fn validate(&self) -> Result<Option<ControlConfig>, ControlError> {
        if !(self.max_rate > 0.0 && self.max_rate <= 1e7) {
            return Err(ControlError::MaxRate(self.max_rate.to_string()));
        }
        if let Some(t) = &self.control_token {
            if t.is_empty() || t.len() > MAX_TOKEN_BYTES || !t.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(ControlError::Token);
            }
        }
        let Some(addr) = self.control_addr else {
            return Ok(None);
        };
        if !addr.ip().is_loopback() && self.control_token.is_none() {
            return Err(ControlError::Exposed(addr));
        }
        Ok(Some(ControlConfig {
            addr,
            token: self.control_token.clone(),
            max_rate: self.max_rate,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: &str, token: Option<&str>) -> ControlArgs {
        ControlArgs {
            control_addr: Some(addr.parse().expect("address")),
            control_token: token.map(str::to_string),
            max_rate: 100_000.0,
        }
    }

    #[test]
    fn anything_but_loopback_needs_a_token() {
        assert!(args("127.0.0.1:8089", None).validate().is_ok());
        assert!(args("[::1]:8089", None).validate().is_ok());
        let err = args("0.0.0.0:8089", None).validate().expect_err("exposed");
        assert!(err.to_string().contains("--control-token"), "{err}");
        assert!(args("0.0.0.0:8089", Some("s3cret")).validate().is_ok());
        assert_eq!(
            args("127.0.0.1:1", Some("has space")).validate(),
            Err(ControlError::Token)
        );
        let mut bad = args("127.0.0.1:1", None);
        bad.max_rate = f64::NAN;
        assert!(bad.validate().is_err());
    }
}
