//! A small typed client for the admin API (`/admin/v1/...`), as documented in
//! `docs/admin-api.md`: resources, consistent reads, cluster membership and status.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

mod types;
pub use types::*;

/// Per-request timeout: long enough for a forwarded write during an election.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No HTTP answer: connection refused, reset, or timed out.
    #[error("{method} {url}: no answer from the node: {source}")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The node answered with a non-2xx status.
    #[error("{method} {url}: {status} {code}: {message}")]
    Api {
        method: Method,
        url: String,
        status: StatusCode,
        code: String,
        message: String,
        body: String,
    },
    /// The node answered 2xx but the body is not what the contract says.
    #[error("{method} {url}: unexpected {status} answer: {problem}; body: {body}")]
    Decode {
        method: Method,
        url: String,
        status: StatusCode,
        problem: String,
        body: String,
    },
}

impl AdminError {
    /// The HTTP status, when the node answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            AdminError::Transport { .. } => None,
            AdminError::Api { status, .. } | AdminError::Decode { status, .. } => Some(*status),
        }
    }

    /// The error code of the JSON error body, when there was one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AdminError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Where a read is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The node's local replica (may lag).
    Local,
    /// Linearizable: the node confirms with the leader first (`?consistent=true`).
    Consistent,
}

/// A client for one node's admin API. Cheap to clone (shares the connection pool).
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

/// An HTTP client suited to the harness: loopback only (no proxies), bounded requests.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

impl AdminClient {
    /// A client for the node whose admin API is at `base_url` (e.g. `http://127.0.0.1:9080`).
    pub fn new(base_url: &str) -> AdminClient {
        AdminClient::with_http(base_url, http_client())
    }

    /// Like [`AdminClient::new`], sharing an existing `reqwest::Client`.
    pub fn with_http(base_url: &str, http: reqwest::Client) -> AdminClient {
        AdminClient {
            base: base_url.trim_end_matches('/').to_string(),
            token: None,
            timeout: REQUEST_TIMEOUT,
            http,
        }
    }

    /// The same client with another per-request timeout (membership changes may take longer).
    pub fn with_timeout(mut self, timeout: Duration) -> AdminClient {
        self.timeout = timeout;
        self
    }

    /// The same client, authenticating with `token`.
    pub fn with_token(mut self, token: &str) -> AdminClient {
        self.token = Some(token.to_string());
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends any request; only a missing answer is an error. `path` starts with `/`.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<RawResponse, AdminError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .timeout(self.timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let transport = |source| AdminError::Transport {
            method: method.clone(),
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let body = resp.text().await.map_err(transport)?;
        Ok(RawResponse { status, body })
    }

    /// Sends JSON, expects 2xx and a JSON answer of type `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, AdminError> {
        let bytes = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let raw = self.raw(method.clone(), path, bytes).await?;
        let url = format!("{}{path}", self.base);
        if !raw.status.is_success() {
            let parsed: Option<Value> = serde_json::from_str(&raw.body).ok();
            let field = |p: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v.pointer(p))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            return Err(AdminError::Api {
                method,
                url,
                status: raw.status,
                code: field("/error/code").unwrap_or_else(|| "<no JSON error body>".into()),
                message: field("/error/message").unwrap_or_default(),
                body: raw.body,
            });
        }
        serde_json::from_str(&raw.body).map_err(|e| AdminError::Decode {
            method,
            url,
            status: raw.status,
            problem: e.to_string(),
            body: raw.body,
        })
    }

    /// `method path` with an optional JSON body, whatever the status: the status and the
    /// answer as JSON (`Null` when it is not JSON), for tests that assert on refusals as
    /// well as answers.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), AdminError> {
        let bytes = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let raw = self.raw(method, path, bytes).await?;
        let answer = serde_json::from_str(&raw.body).unwrap_or(Value::Null);
        Ok((raw.status, answer))
    }

    /// `GET path` whatever the status (see [`AdminClient::json`]).
    pub async fn get_json(&self, path: &str) -> Result<(StatusCode, Value), AdminError> {
        self.json(Method::GET, path, None).await
    }

    /// `POST /admin/v1/tokens`: a new token with `role`, optionally scoped to `tenant`.
    pub async fn mint_token(
        &self,
        role: &str,
        tenant: Option<&str>,
        subject: &str,
    ) -> Result<String, AdminError> {
        let body = serde_json::json!({"role": role, "tenant": tenant, "subject": subject});
        let v: Value = self
            .call(Method::POST, "/admin/v1/tokens", Some(&body))
            .await?;
        Ok(v["token"].as_str().unwrap_or_default().to_string())
    }

    /// `GET /healthz`: the status code (200 when the process is up).
    pub async fn healthz(&self) -> Result<StatusCode, AdminError> {
        Ok(self.raw(Method::GET, "/healthz", None).await?.status)
    }

    /// `POST /admin/v1/cluster/init` on a fresh node.
    pub async fn init(&self) -> Result<InitResponse, AdminError> {
        self.call(Method::POST, "/admin/v1/cluster/init", None)
            .await
    }

    /// `POST /admin/v1/cluster/join`: this node joins the cluster of the node at `via`.
    pub async fn join(&self, via: &str) -> Result<Value, AdminError> {
        self.call(
            Method::POST,
            "/admin/v1/cluster/join",
            Some(&serde_json::json!({ "via": via })),
        )
        .await
    }

    /// `DELETE /admin/v1/cluster/members/{id}`.
    pub async fn remove_member(&self, node_id: u64) -> Result<Value, AdminError> {
        self.call(
            Method::DELETE,
            &format!("/admin/v1/cluster/members/{node_id}"),
            None,
        )
        .await
    }

    /// `POST /admin/v1/cluster/leave`.
    pub async fn leave(&self) -> Result<Value, AdminError> {
        self.call(Method::POST, "/admin/v1/cluster/leave", None)
            .await
    }

    /// `GET /admin/v1/cluster`.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, AdminError> {
        self.call(Method::GET, "/admin/v1/cluster", None).await
    }

    /// `POST /admin/v1/{collection}`: the stored resource.
    pub async fn create(&self, collection: &str, body: &Value) -> Result<Value, AdminError> {
        self.call(Method::POST, &format!("/admin/v1/{collection}"), Some(body))
            .await
    }

    /// `GET /admin/v1/{collection}/{id}`.
    pub async fn get(&self, collection: &str, id: &str, read: Read) -> Result<Value, AdminError> {
        self.call(
            Method::GET,
            &format!("/admin/v1/{collection}/{id}{}", query(read)),
            None,
        )
        .await
    }

    /// `GET /admin/v1/{collection}`.
    pub async fn list(&self, collection: &str, read: Read) -> Result<ResourceList, AdminError> {
        self.call(
            Method::GET,
            &format!("/admin/v1/{collection}{}", query(read)),
            None,
        )
        .await
    }

    /// `PUT /admin/v1/{collection}/{id}`: the stored resource.
    pub async fn update(
        &self,
        collection: &str,
        id: &str,
        body: &Value,
    ) -> Result<Value, AdminError> {
        self.call(
            Method::PUT,
            &format!("/admin/v1/{collection}/{id}"),
            Some(body),
        )
        .await
    }

    /// `DELETE /admin/v1/{collection}/{id}`.
    pub async fn delete(&self, collection: &str, id: &str) -> Result<Value, AdminError> {
        self.call(
            Method::DELETE,
            &format!("/admin/v1/{collection}/{id}"),
            None,
        )
        .await
    }
}

fn query(read: Read) -> &'static str {
    match read {
        Read::Local => "",
        Read::Consistent => "?consistent=true",
    }
}
