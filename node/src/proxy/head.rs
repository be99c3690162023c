//! Phase 6 of a proxied request: the upstream request head built from the client's.
//! The credential the gateway consumed is removed, the path rewritten, hop-by-hop
//! headers dropped (RFC 9110 §7.6.1), the forwarding headers (`X-Forwarded-*`,
//! `Forwarded`, RFC 7239) and the request id, trace context and caller identity added,
//! and the route's header rules applied last.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{StatusCode, Uri};

use crate::proxy::access::Outcome;
use crate::proxy::auth::{Credential, Identity};
use crate::proxy::compile::RouteRt;
use crate::proxy::forward::{fail, ConnInfo, Failure};
use crate::telemetry::trace_context::TRACEPARENT;

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
static X_TENANT_ID: HeaderName = HeaderName::from_static("x-tenant-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the upstream head depends on besides the client's own head.
pub(crate) struct Head<'a> {
    pub conn: ConnInfo,
    pub route: &'a RouteRt,
    pub identity: Option<&'a Identity>,
    /// The client asked for a protocol upgrade (WebSocket): keep `Upgrade`.
    pub upgrade: bool,
    /// The upstream's `preserve_host`: send the client's `Host` instead of the target's.
    pub preserve_host: bool,
}

impl Head<'_> {
    /// The upstream path and query: `new_path` (the rewritten path) with the client's
    /// query, minus the API key when the caller sent it as a query parameter.
    pub fn path_and_query(&self, uri: &Uri, new_path: String) -> Result<PathAndQuery, Failure> {
        let mut query = uri.query().map(str::to_string);
        if let Some(Credential::Query(name)) = self.identity.map(|id| &id.credential) {
            query = query.map(|q| {
                q.split('&')
                    .filter(|kv| kv.split('=').next() != Some(name.as_str()))
                    .collect::<Vec<_>>()
                    .join("&")
            });
        }
        let path_and_query = match query.filter(|q| !q.is_empty()) {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        path_and_query.parse().map_err(|_| {
            fail(
                StatusCode::BAD_REQUEST,
                "bad_path",
                "the rewritten path is not a valid URI path",
            )
        })
    }

    /// Turns the client's headers into the upstream's, in place.
    pub fn headers(&self, headers: &mut HeaderMap, uri: &Uri, outcome: &Outcome) {
        if let Some(Credential::Header(h)) = self.identity.map(|id| &id.credential) {
            headers.remove(h);
        }
        let original_host = headers.get(header::HOST).cloned().or_else(|| {
            uri.authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        strip_hop_by_hop(headers, self.upgrade);
        self.forwarding(headers, original_host.as_ref());
        headers.insert(X_REQUEST_ID.clone(), outcome.request_id.clone());
        if let Some(t) = &outcome.trace {
            // This call's span becomes the upstream's parent (W3C Trace Context).
            headers.insert(TRACEPARENT, t.ctx.traceparent());
        }
        // Only the gateway says who the caller is.
        headers.remove(&X_CONSUMER_ID);
        headers.remove(&X_TENANT_ID);
        if let Some(id) = self.identity {
            if let (Ok(c), Ok(t)) = (
                HeaderValue::from_str(&id.consumer),
                HeaderValue::from_str(&id.tenant),
            ) {
                headers.insert(X_CONSUMER_ID.clone(), c);
                headers.insert(X_TENANT_ID.clone(), t);
            }
        }
        if self.preserve_host {
            if let Some(h) = original_host {
                headers.insert(header::HOST, h);
            }
        } else {
            headers.remove(header::HOST);
        }
        if let Some(ops) = &self.route.request_headers {
            ops.apply(headers);
        }
    }

    /// `X-Forwarded-For/Proto/Host` and `Forwarded`, each appended to what the client
    /// (or a proxy before us) sent.
    fn forwarding(&self, headers: &mut HeaderMap, original_host: Option<&HeaderValue>) {
        let client_ip = self.conn.peer.ip().to_string();
        let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {client_ip}"),
            None => client_ip.clone(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        let proto = if self.conn.tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
        let for_node = if self.conn.peer.is_ipv6() {
            format!("\"[{client_ip}]\"")
        } else {
            client_ip
        };
        let fwd = match original_host.and_then(|h| Some((h, h.to_str().ok()?))) {
            Some((value, h)) => {
                headers.insert(X_FORWARDED_HOST.clone(), value.clone());
                format!("for={for_node};host=\"{h}\";proto={proto}")
            }
            None => format!("for={for_node};proto={proto}"),
        };
        let fwd = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {fwd}"),
            None => fwd,
        };
        if let Ok(v) = HeaderValue::from_str(&fwd) {
            headers.insert(header::FORWARDED, v);
        }
    }
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): `Connection` and every header it
/// names, plus the well-known ones. `TE: trailers` survives; an upgrade keeps
/// `Connection: upgrade` and `Upgrade`.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        if !(keep_upgrade && n == header::UPGRADE) {
            h.remove(n);
        }
    }
    let te_trailers = h
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    for n in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRANSFER_ENCODING,
        &header::PROXY_AUTHORIZATION,
    ] {
        h.remove(n);
    }
    h.remove(header::CONNECTION);
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::UPGRADE);
    }
    if te_trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}
