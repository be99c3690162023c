//! The failed-authentication budget on the data plane (`crate::shield`): the LLM API's
//! wrapper, and the 429 every refusal answers with.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use hyper::body::Incoming;

use crate::proxy::access::Outcome;
use crate::proxy::auth;
use crate::proxy::compile::Compiled;
use crate::proxy::forward::{fail, Failure};
use crate::proxy::{DataPlane, ProxyBody};
use crate::shield::{Port, Shield};

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The LLM API under the failed-authentication budget: a blocked client IP without a
/// key is refused before the call starts; a 401 over the budget becomes a 429.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn llm_guarded(
    dp: &DataPlane,
    shield: &Shield,
    api: crate::llm::Api,
    compiled: &Arc<Compiled>,
    parts: &http::request::Parts,
    body: Incoming,
    outcome: &mut Outcome,
    extra: &mut HeaderMap,
) -> Result<Response<ProxyBody>, Failure> {
    let ip = outcome.client;
    let keyless = !parts.headers.contains_key(header::AUTHORIZATION)
        && !parts.headers.contains_key(&X_API_KEY);
    if keyless && shield.blocked(ip) {
        shield.refused_unauthenticated(Port::Data);
        return Err(too_many_unauthenticated(shield.retry_after(ip), extra));
    }
    let resp = dp.llm.serve(api, compiled, parts, body, outcome).await;
    if resp.status() == StatusCode::UNAUTHORIZED {
        if let Err(retry) = shield.failed_auth(Port::Data, ip) {
            return Err(too_many_unauthenticated(retry, extra));
        }
    }
    Ok(resp)
}

pub(crate) fn too_many_unauthenticated(retry_after: u64, extra: &mut HeaderMap) -> Failure {
    extra.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    let e = auth::AuthError::Throttled;
    fail(e.status(), e.code(), e.to_string())
}
