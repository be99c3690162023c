//! One data-plane request, phase by phase (see the module docs of [`crate::proxy`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use raftgate_store::model::{HashKey, SubscriptionState, UpstreamProtocol};

use crate::llm::Llm;
use crate::proxy::access::{Outcome, Tracked};
use crate::proxy::auth::{self, Identity};
use crate::proxy::capture::CaptureBody;
use crate::proxy::client::Whole;
use crate::proxy::compile::{Backend, Compiled, RouteRt};
use crate::proxy::head::{strip_hop_by_hop, Head, X_REQUEST_ID};
use crate::proxy::limit::{BodyTooLarge, DrainingLimit};
use crate::proxy::policy::CorsVerdict;
use crate::proxy::quota_check::check_quotas;
use crate::proxy::rewrite::rewrite;
use crate::proxy::target::now_ms;
use crate::proxy::unauth::{llm_guarded, too_many_unauthenticated};
use crate::proxy::{BoxError, DataPlane, ProxyBody};
use crate::quota::Quotas;
use crate::shield::{Port, Shield};

/// The client side of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

static DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
static SUNSET: HeaderName = HeaderName::from_static("sunset");
/// Bodies up to this size (with a `Content-Length`) are read before the first try so
/// that a retry can send them again; larger or chunked bodies stream through once.
const REPLAY_MAX: u64 = 64 * 1024;

fn empty() -> ProxyBody {
    Full::new(Bytes::new())
        .map_err(|e| match e {})
        .boxed_unsync()
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Wall-clock Unix milliseconds (key expiry, access log).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

/// Lower-case host without the port, from the URI (HTTP/2, absolute-form) or `Host`.
fn request_host(uri: &Uri, headers: &HeaderMap) -> String {
    let raw = uri
        .host()
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    let host = if raw.starts_with('[') {
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    host.to_ascii_lowercase()
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Replaces the path of `uri` (keeping scheme, authority and query) with `path`, a
/// normalized form of its own path; leaves `uri` alone if the result would not parse.
fn normalize_uri(uri: &mut Uri, path: &str) {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    let original = parts.path_and_query.clone();
    parts.path_and_query = pq.parse().ok().or(original);
    if let Ok(u) = Uri::from_parts(parts) {
        *uri = u;
    }
}

/// Entry point for every data-plane request; never fails, never panics on input.
pub async fn handle(
    dp: Arc<DataPlane>,
    conn: ConnInfo,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let upgrade = if is_upgrade(&req) {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let (mut parts, body) = req.into_parts();
    let request_id = match parts.headers.get(&X_REQUEST_ID) {
        Some(v) if valid_request_id(v) => v.clone(),
        _ => dp.ids.next(),
    };
    let compiled = dp.current();
    if let Some(path) = crate::proxy::rewrite::normalize_dot_segments(parts.uri.path()) {
        normalize_uri(&mut parts.uri, &path);
    }
    let uri = parts.uri.clone();
    let host = request_host(&uri, &parts.headers);
    let mut outcome = Outcome {
        request_id: request_id.clone(),
        method: parts.method.clone(),
        uri: uri.clone(),
        host: host.clone(),
        client: conn.peer.ip(),
        status: 0,
        started,
        headers_after: Duration::ZERO,
        route: None,
        consumer: None,
        tenant: None,
        upstream: None,
        target: None,
        tries: 0,
        error: None,
        llm: None,
        log: dp.access_log.clone(),
        bytes_in: parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        calls: dp.call_log.clone(),
        trace: dp.tracer.get().map(|t| t.begin(&parts.headers)),
        capture: None,
        rate: None,
    };
    let mut extra = HeaderMap::new();
    let shield = dp.shield.get().map(|s| &**s);
    let result = match crate::llm::Api::of(&parts.method, uri.path()) {
        // HTTP/1 is refused by hyper's parser before this; HTTP/2 has no count limit.
        _ if shield.is_some_and(|s| s.too_many_headers(Port::Data, parts.headers.len())) => {
            Err(fail(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too_many_headers",
                "the request has too many header fields",
            ))
        }
        // The LLM API is reserved on every data-plane port, before user routes.
        Some(api) => match shield {
            Some(s) => {
                llm_guarded(
                    &dp,
                    s,
                    api,
                    &compiled,
                    &parts,
                    body,
                    &mut outcome,
                    &mut extra,
                )
                .await
            }
            None => Ok(dp
                .llm
                .serve(api, &compiled, &parts, body, &mut outcome)
                .await),
        },
        None => {
            route_and_forward(
                &compiled,
                &dp.quotas,
                &dp.llm,
                shield,
                conn,
                &mut parts,
                body,
                upgrade,
                &uri,
                &host,
                &mut outcome,
                &mut extra,
            )
            .await
        }
    };
    let mut resp = match result {
        Ok(r) => r,
        Err((status, code, message)) => {
            outcome.error = Some(code);
            let mut r = json_error(status, code, &message);
            if status == StatusCode::PAYLOAD_TOO_LARGE && parts.version <= Version::HTTP_11 {
                // The body stays unread and hyper closes the connection: say so, or a
                // keep-alive client may send its next request on a closing socket.
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
    };
    if !extra.is_empty() {
        resp.headers_mut().extend(extra);
    }
    if let Some(h) = &outcome.rate {
        h.write(resp.headers_mut());
    }
    if let Some(t) = resp.extensions_mut().remove::<crate::llm::LlmTrace>() {
        outcome.llm = Some(t);
    }
    resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
    outcome.status = resp.status().as_u16();
    if outcome.headers_after.is_zero() {
        outcome.headers_after = started.elapsed();
    }
    let (rparts, mut rbody) = resp.into_parts();
    if let Some(tap) = outcome.capture.as_ref().and_then(|c| c.response.clone()) {
        if hyper::body::Body::is_end_stream(&rbody) {
            tap.whole(b"");
        } else {
            // Inside `Tracked`, so the prefix is complete when the record is made.
            rbody = CaptureBody::new(rbody, tap).boxed_unsync();
        }
    }
    Ok(Response::from_parts(
        rparts,
        Tracked::new(rbody, outcome).boxed_unsync(),
    ))
}

pub(crate) type Failure = (StatusCode, &'static str, String);

pub(crate) fn fail(status: StatusCode, code: &'static str, message: impl Into<String>) -> Failure {
    (status, code, message.into())
}

/// Consumer-level access to a route once the caller is known.
fn check_access(c: &Compiled, route: &RouteRt, id: &Identity) -> Result<(), Failure> {
    if let Some(svc) = &route.service {
        let state = c
            .subscriptions
            .get(&id.consumer)
            .and_then(|m| m.get(&svc.id));
        return match state {
            Some(SubscriptionState::Approved) => Ok(()),
            Some(SubscriptionState::Pending) => Err(fail(
                StatusCode::FORBIDDEN,
                "not_subscribed",
                format!(
                    "the subscription of consumer {:?} to service {:?} is pending approval",
                    id.consumer, svc.id
                ),
            )),
            Some(s) => Err(fail(
                StatusCode::FORBIDDEN,
                "not_subscribed",
                format!(
                    "the subscription of consumer {:?} to service {:?} was {}",
                    id.consumer,
                    svc.id,
                    if *s == SubscriptionState::Rejected {
                        "rejected"
                    } else {
                        "revoked"
                    }
                ),
            )),
            None => Err(fail(
                StatusCode::FORBIDDEN,
                "not_subscribed",
                format!(
                    "consumer {:?} has no subscription to service {:?}",
                    id.consumer, svc.id
                ),
            )),
        };
    }
    let granted = c
        .route_grants
        .get(&id.consumer)
        .is_some_and(|r| r.contains(&route.id));
    match &route.tenant {
        Some(t) if *t != id.tenant && !granted => Err(fail(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("route {:?} belongs to another tenant", route.id),
        )),
        _ => Ok(()),
    }
}

enum BodySource {
    Replay(Bytes),
    Stream(Option<ProxyBody>),
}

/// One try's request: a whole body sent with the borrowed head, or a hyper request.
/// It lives for one try on the request's own stack: boxing the large variant would only
/// add an allocation.
#[allow(clippy::large_enum_variant)]
enum Send {
    Whole(Bytes),
    Streamed(Request<ProxyBody>),
}

#[allow(clippy::too_many_arguments)]
async fn route_and_forward(
    compiled: &Arc<Compiled>,
    quotas: &Quotas,
    llm: &Llm,
    shield: Option<&Shield>,
    conn: ConnInfo,
    parts: &mut http::request::Parts,
    body: Incoming,
    downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    uri: &Uri,
    host: &str,
    outcome: &mut Outcome,
    extra: &mut HeaderMap,
) -> Result<Response<ProxyBody>, Failure> {
    // Phase 1: route.
    let path = uri.path();
    let Some(found) = compiled
        .router
        .find(host, &parts.method, path, &parts.headers)
    else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            "no_route",
            format!("no route matches {} {}", parts.method, path),
        ));
    };
    let route = found.value.clone();
    outcome.route = Some(route.clone());
    outcome.capture = route.capture.as_ref().map(|c| c.start());

    // Phase 2: network and browser rules.
    if let Some(ip) = &route.ip {
        if !ip.permits(conn.peer.ip()) {
            return Err(fail(
                StatusCode::FORBIDDEN,
                "ip_denied",
                format!("client address {} is not allowed", conn.peer.ip()),
            ));
        }
    }
    if let Some(cors) = &route.cors {
        match cors.check(&parts.method, &parts.headers) {
            CorsVerdict::NotCors => {}
            CorsVerdict::Preflight(h) => {
                let mut r = Response::new(empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                extra.extend(h);
                return Ok(r);
            }
            CorsVerdict::Allowed(h) => extra.extend(h),
            CorsVerdict::Denied(m) => return Err(fail(StatusCode::FORBIDDEN, "cors_denied", m)),
        }
    }
    if let Some(svc) = &route.service {
        if let Some(d) = &svc.deprecation {
            extra.insert(DEPRECATION.clone(), d.clone());
        }
        if let Some(s) = &svc.sunset {
            extra.insert(SUNSET.clone(), s.clone());
        }
    }

    // Phase 3: who is calling, and may they.
    let state = &compiled.snapshot.state;
    let identity = if route.auth.is_empty() {
        None
    } else {
        let ip = conn.peer.ip();
        // A client IP over its failed-authentication budget gets no JWT signature check.
        let jwt_ok = || shield.is_none_or(|s| !s.blocked(ip));
        let found = auth::authenticate_gated(&route.auth, parts, state, unix_ms(), &jwt_ok);
        if let (Err(e), Some(s)) = (&found, shield) {
            if e.status() == StatusCode::UNAUTHORIZED {
                if let Err(retry) = s.failed_auth(Port::Data, ip) {
                    return Err(too_many_unauthenticated(retry, extra));
                }
            } else if matches!(e, auth::AuthError::Throttled) {
                s.refused_unauthenticated(Port::Data);
                extra.insert(header::RETRY_AFTER, HeaderValue::from(s.retry_after(ip)));
            }
        }
        let id = found
            .and_then(|id| auth::check_enabled(&id, state).map(|_| id))
            .map_err(|e| fail(e.status(), e.code(), e.to_string()))?;
        outcome.consumer = Some(id.consumer.clone());
        outcome.tenant = Some(id.tenant.clone());
        check_access(compiled, &route, &id)?;
        Some(id)
    };
    // Phase 4: quotas. Units come from this node's local balances; a call waits for
    // Raft only when its counter's balance ran dry.
    if !route.quotas.is_empty() {
        outcome.rate = check_quotas(quotas, &route, identity.as_ref(), extra).await?;
    }

    // Phase 5: the body. The route's limit, else the node's default (`limits`).
    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let body_limit = route.body_limit.or_else(|| {
        shield
            .map(|s| s.limits.max_request_body_bytes)
            .filter(|&m| m > 0)
    });
    if let (Some(max), Some(len)) = (body_limit, content_length) {
        if len > max {
            return Err(fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body of {len} bytes exceeds this route's limit of {max}"),
            ));
        }
    }
    let up = match &route.backend {
        Backend::Upstream(u) => u.clone(),
        // A route to a model or a prompt template: the LLM gateway answers.
        Backend::Llm(target) => {
            let who = crate::llm::Who::of(identity.as_ref(), route.tenant.as_deref());
            return Ok(llm
                .serve_route(target, &route, compiled, who, parts, body, outcome)
                .await);
        }
    };
    let mut source = if hyper::body::Body::is_end_stream(&body) {
        BodySource::Replay(Bytes::new())
    } else if content_length.is_some_and(|l| l <= REPLAY_MAX) && downstream_upgrade.is_none() {
        let bytes = Limited::new(body, REPLAY_MAX as usize)
            .collect()
            .await
            .map_err(|e| {
                fail(
                    StatusCode::BAD_REQUEST,
                    "bad_request_body",
                    format!("reading the request body: {e}"),
                )
            })?
            .to_bytes();
        BodySource::Replay(bytes)
    } else {
        let b = match body_limit {
            Some(max) => DrainingLimit::new(body, max).boxed_unsync(),
            None => body.map_err(BoxError::from).boxed_unsync(),
        };
        BodySource::Stream(Some(b))
    };
    if let Some(tap) = outcome.capture.as_ref().and_then(|c| c.request.as_ref()) {
        match &mut source {
            BodySource::Replay(b) => tap.whole(b),
            BodySource::Stream(b) => {
                *b = b
                    .take()
                    .map(|b| CaptureBody::new(b, tap.clone()).boxed_unsync());
            }
        }
    }

    // Phase 6: the upstream request head (`head`).
    let new_path = match &route.rewrite {
        Some(rule) => rewrite(rule, path, found.matched_len, &found.params),
        None => path.to_string(),
    };
    let up = &up;
    let head = Head {
        conn,
        route: &route,
        identity: identity.as_ref(),
        upgrade: downstream_upgrade.is_some(),
        preserve_host: up.spec.preserve_host,
    };
    let path_and_query = head.path_and_query(uri, new_path)?;
    head.headers(&mut parts.headers, uri, outcome);

    // Phase 7: tries.
    let spec = &up.spec;
    outcome.upstream = Some(up.clone());
    let hash_key: Option<Vec<u8>> = match up.hash_key() {
        Some(HashKey::Header(name)) => parts
            .headers
            .get(name.as_str())
            .map(|v| v.as_bytes().to_vec()),
        Some(HashKey::Cookie(name)) => parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                c.trim()
                    .strip_prefix(name.as_str())?
                    .strip_prefix('=')
                    .map(|v| v.as_bytes().to_vec())
            }),
        Some(HashKey::ClientIp) => Some(conn.peer.ip().to_string().into_bytes()),
        None => None,
    };
    let version = match spec.protocol {
        UpstreamProtocol::Http1 => Version::HTTP_11,
        UpstreamProtocol::Http2 => Version::HTTP_2,
    };
    let deadline = outcome.started + Duration::from_millis(spec.timeouts.total_ms);
    let idempotent = crate::proxy::pool::idempotent(&parts.method);
    let passive = spec.health_check.passive.as_ref();
    let breaker = spec.circuit_breaker.as_ref();
    let mut tried: Vec<usize> = Vec::new();
    let mut last: Option<Failure> = None;
    loop {
        let Some(i) = up.balancer.pick(hash_key.as_deref(), &tried, breaker) else {
            return Err(last.unwrap_or_else(|| {
                fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_healthy_upstream",
                    format!("upstream {:?} has no healthy target", up.id),
                )
            }));
        };
        let target = up.balancer.targets[i].0.clone();
        outcome.tries += 1;
        let replayable = matches!(source, BodySource::Replay(_));
        // The common case, a body at hand whole to an HTTP/1.1 upstream and no upgrade,
        // borrows the head; anything else goes out as a hyper request (which takes the
        // headers on the last try instead of copying them).
        let whole = replayable && downstream_upgrade.is_none() && up.client.takes_whole();
        let send = match (&mut source, whole) {
            (BodySource::Replay(b), true) => Send::Whole(b.clone()),
            (source, _) => {
                // The last possible try takes the headers instead of copying them.
                let last_try = !replayable || outcome.tries > spec.retries.attempts;
                let headers = if last_try {
                    std::mem::take(&mut parts.headers)
                } else {
                    parts.headers.clone()
                };
                let body = match source {
                    BodySource::Replay(b) => {
                        Full::new(b.clone()).map_err(|e| match e {}).boxed_unsync()
                    }
                    BodySource::Stream(b) => b.take().unwrap_or_else(empty),
                };
                let uri = Uri::builder()
                    .scheme(up.scheme.clone())
                    .authority(target.authority.clone())
                    .path_and_query(path_and_query.clone())
                    .build()
                    .map_err(|e| {
                        fail(StatusCode::BAD_GATEWAY, "bad_upstream_uri", e.to_string())
                    })?;
                let mut req = Request::new(body);
                *req.method_mut() = parts.method.clone();
                *req.uri_mut() = uri;
                *req.version_mut() = version;
                *req.headers_mut() = headers;
                Send::Streamed(req)
            }
        };
        target.begin();
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let per_try = Duration::from_millis(spec.timeouts.per_try_ms).min(left);
        let res = match send {
            Send::Whole(body) => {
                let req = Whole {
                    method: &parts.method,
                    path_and_query: &path_and_query,
                    headers: &parts.headers,
                    body: &body,
                };
                tokio::time::timeout(per_try, up.client.request_whole(&target.authority, req)).await
            }
            Send::Streamed(req) => {
                tokio::time::timeout(per_try, up.client.request(&target.authority, req)).await
            }
        };
        up.metrics.duration.observe(now.elapsed().as_secs_f64());
        let can_retry = |retry_kind_ok: bool| {
            retry_kind_ok
                && replayable
                && (outcome.tries as u64) <= u64::from(spec.retries.attempts)
                && Instant::now() < deadline
        };
        let retry = match res {
            Ok(Ok(mut resp)) => {
                let status = resp.status();
                target.record(!status.is_server_error(), passive, breaker, now_ms());
                if spec.retries.on_statuses.contains(&status.as_u16()) && can_retry(idempotent) {
                    target.end();
                    last = Some(fail(
                        StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        format!("upstream answered {status}"),
                    ));
                    true
                } else {
                    outcome.target = Some(target);
                    outcome.headers_after = outcome.started.elapsed();
                    if status == StatusCode::SWITCHING_PROTOCOLS {
                        if let Some(down) = downstream_upgrade {
                            let up_conn = hyper::upgrade::on(&mut resp);
                            tokio::spawn(tunnel(down, up_conn));
                        }
                        let (p, _) = resp.into_parts();
                        return Ok(Response::from_parts(p, empty()));
                    }
                    let (mut p, b) = resp.into_parts();
                    strip_hop_by_hop(&mut p.headers, false);
                    if let Some(ops) = &route.response_headers {
                        ops.apply(&mut p.headers);
                    }
                    return Ok(Response::from_parts(p, b));
                }
            }
            Ok(Err(e)) => {
                target.end();
                if body_limit_hit(&e) {
                    return Err(fail(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!(
                            "request body exceeds this route's limit of {} bytes",
                            body_limit.unwrap_or(0)
                        ),
                    ));
                }
                target.record(false, passive, breaker, now_ms());
                let connect = e.is_connect();
                tracing::debug!(request_id = ?outcome.request_id, target = %target.address, error = %e, "upstream try failed");
                last = Some(if connect {
                    fail(
                        StatusCode::BAD_GATEWAY,
                        "upstream_unavailable",
                        format!("cannot connect to upstream {:?}", up.id),
                    )
                } else {
                    fail(
                        StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        format!("upstream {:?} failed: {}", up.id, root_cause(&e)),
                    )
                });
                can_retry(connect || idempotent)
            }
            Err(_) => {
                target.end();
                target.record(false, passive, breaker, now_ms());
                last = Some(fail(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!("upstream {:?} did not answer in time", up.id),
                ));
                can_retry(idempotent)
            }
        };
        if !retry {
            return Err(last.unwrap_or_else(|| {
                fail(StatusCode::BAD_GATEWAY, "upstream_error", "upstream failed")
            }));
        }
        tried.push(i);
        if tried.len() >= up.balancer.targets.len() {
            tried.clear(); // every target had a go: allow them again
        }
        up.metrics.retries.inc();
        let backoff = Duration::from_millis(
            spec.retries
                .backoff_ms
                .saturating_mul(1 << (outcome.tries - 1).min(10)),
        );
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(backoff.min(left)).await;
    }
}

fn body_limit_hit(e: &crate::proxy::pool::UpstreamError) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if s.is::<http_body_util::LengthLimitError>() || s.is::<BodyTooLarge>() {
            return true;
        }
        src = s.source();
    }
    false
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Copies bytes both ways between the client and the upstream after a 101.
async fn tunnel(down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    let (Ok(down), Ok(up)) = tokio::join!(down, up) else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(down), &mut TokioIo::new(up)).await;
}
