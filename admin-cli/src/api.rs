//! The gateway's admin API as `cairn-admin` calls it.

use std::time::Duration;

/// Longest wait to connect to the gateway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one whole answer. Jobs run in the background and are polled, but a forced
/// `volume remove` rewrites every record naming the volume before it answers, which on a large
/// index takes minutes; a wait cut short leaves it to be run again.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The admin API, for one invocation.
pub(crate) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of the admin API at `base`, with `token`.
    pub(crate) fn new(base: String, token: String) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(ANSWER_TIMEOUT)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { base, token, http })
    }

    /// `method path` with an optional JSON body: the answer's text, or why there is none.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<String, String> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let code = response.status();
        let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !code.is_success() {
            return Err(format!("{url} answered {code}: {}", text.trim()));
        }
        Ok(text)
    }

    /// `POST path` with `body` as JSON.
    pub(crate) async fn post(&self, path: &str, body: &impl serde::Serialize) -> Result<String, String> {
        let body = serde_json::to_value(body).map_err(|e| format!("request body: {e}"))?;
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> Result<String, String> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

/// An answer's JSON as `T`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("unexpected answer: {e}"))
}
