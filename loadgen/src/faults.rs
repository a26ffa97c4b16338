//! Scenario faults: the admin client for the server's fault API (`POST /admin/faults`, with
//! an optional bearer token), checked before the run, and the driver that switches each fault
//! on when its phase starts.

use std::time::Duration;

use order_server::FaultRequest;
use reqwest::{Client, StatusCode, Url};
use tokio::time::Instant;

use crate::endpoint::{parse_base, EndpointError};
use crate::scenario::TimedFault;

/// The largest answer taken from the fault API (its lists of faults are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} answered with more than 64 KiB: not the order server's fault API")]
    TooLarge(Url),
    #[error("--admin-url: {0}")]
    Url(#[source] EndpointError),
    #[error("building the admin client failed: {0}")]
    Build(#[source] reqwest::Error),
    #[error("{url}: {source}")]
    Request {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Refused {
        url: Url,
        status: StatusCode,
        body: String,
    },
}

/// Switches faults on at the server's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    client: Client,
    url: Url,
    token: Option<String>,
}

impl AdminClient {
    pub fn new(admin: &str, token: Option<String>) -> Result<Self, AdminError> {
        let url = parse_base(admin)
            .map_err(AdminError::Url)?
            .join("admin/faults")
            .map_err(|e| AdminError::Url(EndpointError::Target(admin.into(), e.to_string())))?;
        let client = Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(AdminError::Build)?;
        Ok(AdminClient { client, url, token })
    }

    /// Lists the active faults: proves the API is reachable and the token accepted.
    pub async fn check(&self) -> Result<(), AdminError> {
        self.call(self.client.get(self.url.clone())).await
    }

    /// Posts one fault; a refusal carries the server's reason.
    pub async fn inject(&self, fault: &FaultRequest) -> Result<(), AdminError> {
        self.call(self.client.post(self.url.clone()).json(fault))
            .await
    }

    /// Passes a call on to the fault API as it is (the control API's `/api/v1/faults`): the
    /// server's status and body, whatever they say.
    pub async fn forward(
        &self,
        method: reqwest::Method,
        fault: Option<&FaultRequest>,
    ) -> Result<(StatusCode, String), AdminError> {
        let mut req = self.client.request(method, self.url.clone());
        if let Some(f) = fault {
            req = req.json(f);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let fail = |source| AdminError::Request {
            url: self.url.clone(),
            source,
        };
        let mut resp = req.send().await.map_err(fail)?;
        let status = resp.status();
        // Read up to a bound: whatever answers at that address cannot fill the memory.
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fail)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(AdminError::TooLarge(self.url.clone()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn call(&self, mut req: reqwest::RequestBuilder) -> Result<(), AdminError> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|source| AdminError::Request {
            url: self.url.clone(),
            source,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        Err(AdminError::Refused {
            url: self.url.clone(),
            status,
            body: resp.text().await.unwrap_or_default(),
        })
    }
}

/// Switches each fault on `at` its time from `start`, calling `switched` with each fault the
/// server took; a refusal is logged and the run goes on.
pub async fn drive(
    admin: AdminClient,
    faults: Vec<TimedFault>,
    start: Instant,
    switched: impl Fn(&TimedFault),
) {
    for f in faults {
        tokio::time::sleep_until(start + Duration::from_secs_f64(f.at)).await;
        match admin.inject(&f.request).await {
            Ok(()) => {
                let fault = serde_json::to_string(&f.request).unwrap_or_default();
                tracing::info!(phase = %f.phase, %fault, "fault switched on");
                switched(&f);
            }
            Err(e) => {
                tracing::error!(phase = %f.phase, error = %e, "could not switch the fault on")
            }
        }
    }
}
