//! Shaping answers and errors: JSON responses, gateway headers, quota rejections and
//! provider failures in the client's terms.

use super::*;

/// The text of a whole answer's choices (content and tool-call arguments).
pub(super) fn answer_text(resp: &Value) -> String {
    let mut out = String::new();
    for c in resp
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = c.pointer("/message/content").and_then(Value::as_str) {
            out.push_str(t);
            out.push('\n');
        }
        for call in c
            .pointer("/message/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(a) = call.pointer("/function/arguments").and_then(Value::as_str) {
                out.push_str(a);
                out.push('\n');
            }
        }
    }
    out
}

pub(super) fn json_response(body: &Value, headers: HeaderMap) -> Response<ProxyBody> {
    json_bytes_response(Bytes::from(body.to_string()), headers)
}

/// A JSON answer whose body is already written.
pub(super) fn json_bytes_response(body: Bytes, headers: HeaderMap) -> Response<ProxyBody> {
    let mut r = Response::new(Full::new(body).map_err(|e| match e {}).boxed_unsync());
    r.headers_mut().extend(headers);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) static X_PROVIDER: HeaderName = HeaderName::from_static("x-raftgate-provider");

pub(super) static X_UPSTREAM_MODEL: HeaderName =
    HeaderName::from_static("x-raftgate-upstream-model");

pub(super) fn provider_headers(h: &mut HeaderMap, provider: &Provider, attempt: &Attempt) {
    if let Ok(v) = HeaderValue::from_str(&provider.id) {
        h.insert(X_PROVIDER.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&attempt.deployment.model) {
        h.insert(X_UPSTREAM_MODEL.clone(), v);
    }
}

pub(super) fn rejection(r: Rejection) -> LlmError {
    match r {
        Rejection::Exhausted {
            policy,
            limit,
            headers,
            ..
        } => {
            let mut e = LlmError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!("quota {policy:?} is used up for this window (limit {limit})"),
            );
            headers.write(&mut e.headers);
            e.headers.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(headers.reset_secs.unwrap_or(60).max(1)),
            );
            e
        }
        Rejection::Unavailable { policy } => {
            let mut e = LlmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "quota_unavailable",
                format!("quota {policy:?} cannot be checked: the cluster leader is unreachable"),
            );
            e.headers
                .insert(http::header::RETRY_AFTER, HeaderValue::from(1u64));
            e
        }
    }
}

/// A provider said no to the request itself (4xx other than 429): the client sees it.
pub(super) fn provider_refused(e: &AttemptError) -> LlmError {
    let status = e
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    LlmError::new(status, "provider_error", e.message.clone())
}

/// Every deployment failed: 429 when they were all rate limited, else 502/504.
pub(super) fn all_failed(model: &str, failures: &[AttemptError]) -> LlmError {
    let all_limited = !failures.is_empty() && failures.iter().all(|f| f.status == Some(429));
    let last = failures
        .last()
        .map_or("no deployment could be tried".to_string(), |f| {
            f.message.clone()
        });
    if all_limited {
        let mut e = LlmError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            format!("every deployment of `{model}` is rate limited: {last}"),
        );
        let wait = failures
            .iter()
            .filter_map(|f| f.retry_after)
            .min()
            .unwrap_or(Duration::from_secs(1));
        e.headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return e;
    }
    let timed_out = failures
        .last()
        .is_some_and(|f| f.message.contains("within"));
    let status = if timed_out {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    LlmError::new(
        status,
        "provider_unavailable",
        format!(
            "no deployment of `{model}` answered ({} tried): {last}",
            failures.len()
        ),
    )
}
