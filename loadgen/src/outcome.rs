//! What happened to one request, as a closed set of classes: the status classes, timeouts,
//! connection failures and anything else. Both executors classify into it, and the report,
//! the recorder and the exported metrics count by it.

use serde::Serialize;

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    #[serde(rename = "2xx")]
    Success,
    #[serde(rename = "4xx")]
    ClientError,
    #[serde(rename = "5xx")]
    ServerError,
    Timeout,
    ConnectError,
    Other,
}

impl OutcomeClass {
    pub const ALL: [OutcomeClass; 6] = [
        OutcomeClass::Success,
        OutcomeClass::ClientError,
        OutcomeClass::ServerError,
        OutcomeClass::Timeout,
        OutcomeClass::ConnectError,
        OutcomeClass::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Success => "2xx",
            OutcomeClass::ClientError => "4xx",
            OutcomeClass::ServerError => "5xx",
            OutcomeClass::Timeout => "timeout",
            OutcomeClass::ConnectError => "connect_error",
            OutcomeClass::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the request reached the server and its latency means something.
    pub fn is_timed(self) -> bool {
        !matches!(self, OutcomeClass::ConnectError)
    }

    pub fn from_status(status: u16) -> Self {
        match status {
            200..=299 => OutcomeClass::Success,
            400..=499 => OutcomeClass::ClientError,
            500..=599 => OutcomeClass::ServerError,
            _ => OutcomeClass::Other,
        }
    }

    pub fn from_error(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            OutcomeClass::Timeout
        } else if e.is_connect() {
            OutcomeClass::ConnectError
        } else {
            OutcomeClass::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(OutcomeClass::from_status(204), OutcomeClass::Success);
        assert_eq!(OutcomeClass::from_status(404), OutcomeClass::ClientError);
        assert_eq!(OutcomeClass::from_status(503), OutcomeClass::ServerError);
        assert_eq!(OutcomeClass::from_status(302), OutcomeClass::Other);
    }
}
