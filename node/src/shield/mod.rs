//! Limits on hostile input, on every port: header size and count, header and idle
//! timeouts, the default request-body limit, JSON depth, connections per client IP, and
//! the per-IP budget of failed authentications. See docs/data-plane.md, "Limits on
//! hostile input".
//!
//! Cost on the request path: a few uncontended atomics per request (connection
//! activity), nothing per authenticated request; the per-IP tables are touched only at
//! accept/close and when authentication fails.

pub mod admin;
pub mod conns;
pub mod depth;
pub mod rate;
pub mod serve;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde::Deserialize;

use crate::config::ConfigError;
pub use depth::{check_depth, TooDeep};

/// The `[limits]` table of the node config. Every key has a default like nginx's or
/// Envoy's; `0` turns off the keys that say so.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Request line plus headers, in bytes (HTTP/1 read buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Header fields per request.
    pub max_headers: usize,
    /// Time to receive a request's headers; on HTTP/1 also the keep-alive idle time.
    pub header_read_timeout_secs: u64,
    /// A connection with no request in flight for this long is closed (HTTP/2, and
    /// HTTP/1 as a backstop).
    pub idle_timeout_secs: u64,
    /// Proxied request bodies, counted as they stream, when the route sets no
    /// `body_limit`; 0: no limit.
    pub max_request_body_bytes: u64,
    /// Nesting of arrays and objects in every JSON body the gateway parses itself.
    pub max_json_depth: usize,
    /// Concurrent connections per client IP (an IPv6 client is its /64), per port
    /// group (data plane, admin); 0: no limit.
    pub max_connections_per_ip: u32,
    /// Failed or missing authentications per second per client IP; 0: no limit.
    pub unauthenticated_per_sec: u32,
    /// Failed authentications a client IP may make at once before the rate applies.
    pub unauthenticated_burst: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_request_body_bytes: 10 * 1024 * 1024,
            max_json_depth: 64,
            max_connections_per_ip: 256,
            unauthenticated_per_sec: 10,
            unauthenticated_burst: 100,
        }
    }
}

/// hyper refuses HTTP/1 read buffers below 8 KiB.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;
/// serde_json's own recursion limit; deeper bodies would fail there anyway.
pub const MAX_JSON_DEPTH: usize = 128;

impl Limits {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError {
            key: format!("limits.{key}"),
            message,
        };
        if !(MIN_HEADER_BYTES..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err(bad(
                "max_header_bytes",
                format!("must be between {MIN_HEADER_BYTES} and 1048576"),
            ));
        }
        if !(1..=10_000).contains(&self.max_headers) {
            return Err(bad("max_headers", "must be between 1 and 10000".into()));
        }
        if !(1..=3600).contains(&self.header_read_timeout_secs) {
            return Err(bad(
                "header_read_timeout_secs",
                "must be between 1 and 3600".into(),
            ));
        }
        if !(1..=86_400).contains(&self.idle_timeout_secs) {
            return Err(bad(
                "idle_timeout_secs",
                "must be between 1 and 86400".into(),
            ));
        }
        if !(1..=MAX_JSON_DEPTH).contains(&self.max_json_depth) {
            return Err(bad(
                "max_json_depth",
                format!("must be between 1 and {MAX_JSON_DEPTH}"),
            ));
        }
        if self.unauthenticated_per_sec > 0 && self.unauthenticated_burst == 0 {
            return Err(bad(
                "unauthenticated_burst",
                "must be positive when unauthenticated_per_sec is set".into(),
            ));
        }
        Ok(())
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// `--max-header-bytes` … flags and `RAFTGATE_*` variables over the `[limits]` table.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Request line plus headers, in bytes (default 32768).
    #[arg(long, env = "RAFTGATE_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Header fields per request (default 100).
    #[arg(long, env = "RAFTGATE_MAX_HEADERS")]
    pub max_headers: Option<usize>,
    /// Seconds to receive a request's headers (default 10).
    #[arg(long, env = "RAFTGATE_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a connection may sit without a request in flight (default 60).
    #[arg(long, env = "RAFTGATE_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Default proxied body limit in bytes, 0 for none (default 10 MiB).
    #[arg(long, env = "RAFTGATE_MAX_REQUEST_BODY_BYTES")]
    pub max_request_body_bytes: Option<u64>,
    /// Deepest JSON nesting accepted (default 64).
    #[arg(long, env = "RAFTGATE_MAX_JSON_DEPTH")]
    pub max_json_depth: Option<usize>,
    /// Concurrent connections per client IP, 0 for none (default 256).
    #[arg(long, env = "RAFTGATE_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<u32>,
    /// Failed authentications per second per client IP, 0 for none (default 10).
    #[arg(long, env = "RAFTGATE_UNAUTHENTICATED_PER_SEC")]
    pub unauthenticated_per_sec: Option<u32>,
    /// Burst of failed authentications per client IP (default 100).
    #[arg(long, env = "RAFTGATE_UNAUTHENTICATED_BURST")]
    pub unauthenticated_burst: Option<u32>,
}

impl LimitArgs {
    /// Puts every given flag over `l`.
    pub fn apply(&self, l: &mut Limits) {
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { l.$f = v; } )* };
        }
        over!(
            max_header_bytes,
            max_headers,
            header_read_timeout_secs,
            idle_timeout_secs,
            max_request_body_bytes,
            max_json_depth,
            max_connections_per_ip,
            unauthenticated_per_sec,
            unauthenticated_burst
        );
    }
}

/// The JSON depth limit of this process, read by the admin API and the LLM API.
static JSON_DEPTH: AtomicUsize = AtomicUsize::new(64);

/// The configured JSON depth limit.
pub fn json_depth() -> usize {
    JSON_DEPTH.load(Ordering::Relaxed)
}

/// Which listeners a connection or request arrived on: each group has its own
/// connection counts, so a flood on the data plane cannot lock an operator out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Data,
    Admin,
}

/// Counters of what the limits turned away.
struct ShieldMetrics {
    conns: [IntCounter; 2],
    unauth: [IntCounter; 2],
    idle: [IntCounter; 2],
    headers: [IntCounter; 2],
}

impl ShieldMetrics {
    fn new(registry: &Registry) -> ShieldMetrics {
        let vec = IntCounterVec::new(
            Opts::new(
                "raftgate_limit_rejections_total",
                "Connections and requests turned away by the hostile-input limits",
            ),
            &["port", "limit"],
        )
        .unwrap_or_else(|_| unreachable!("static metric names are valid"));
        let _ = registry.register(Box::new(vec.clone()));
        let pair = |limit: &str| {
            [
                vec.with_label_values(&["data", limit]),
                vec.with_label_values(&["admin", limit]),
            ]
        };
        ShieldMetrics {
            conns: pair("connections_per_ip"),
            unauth: pair("unauthenticated_rate"),
            idle: pair("idle_timeout"),
            headers: pair("header_count"),
        }
    }
}

/// The node's limits and their per-IP tables; one per node, shared by every listener.
pub struct Shield {
    pub limits: Limits,
    conns: [conns::ConnTable; 2],
    unauth: rate::RateTable,
    metrics: ShieldMetrics,
}

impl Shield {
    pub fn new(limits: Limits, registry: &Registry) -> Arc<Shield> {
        JSON_DEPTH.store(limits.max_json_depth, Ordering::Relaxed);
        let cap = limits.max_connections_per_ip;
        Arc::new(Shield {
            unauth: rate::RateTable::new(
                limits.unauthenticated_per_sec,
                limits.unauthenticated_burst,
            ),
            conns: [conns::ConnTable::new(cap), conns::ConnTable::new(cap)],
            metrics: ShieldMetrics::new(registry),
            limits,
        })
    }

    fn idx(port: Port) -> usize {
        match port {
            Port::Data => 0,
            Port::Admin => 1,
        }
    }

    /// Counts a new connection of `ip`; `None` (and a metric) when `ip` is at its cap.
    pub fn admit(self: &Arc<Self>, port: Port, ip: IpAddr) -> Option<conns::ConnGuard> {
        let g = conns::ConnGuard::acquire(self.clone(), Self::idx(port), ip);
        if g.is_none() {
            self.metrics.conns[Self::idx(port)].inc();
        }
        g
    }

    fn table(&self, i: usize) -> &conns::ConnTable {
        &self.conns[i]
    }

    /// True when `ip` has used up its failed-authentication budget: requests without a
    /// credential are then refused before any authentication work.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        self.unauth.blocked(ip)
    }

    /// Records one failed or missing authentication of `ip`. `Err(retry_after_secs)`
    /// when over the budget: answer 429 instead of 401.
    pub fn failed_auth(&self, port: Port, ip: IpAddr) -> Result<(), u64> {
        let r = self.unauth.take(ip);
        if r.is_err() {
            self.metrics.unauth[Self::idx(port)].inc();
        }
        r
    }

    /// Seconds until `ip` may try again (for `Retry-After` on a pre-auth refusal).
    pub fn retry_after(&self, ip: IpAddr) -> u64 {
        self.unauth.retry_after(ip)
    }

    /// Counts a request refused without authentication work (`blocked`).
    pub fn refused_unauthenticated(&self, port: Port) {
        self.metrics.unauth[Self::idx(port)].inc();
    }

    /// True when a request carries more header fields than allowed (HTTP/2 has no
    /// parser limit for the count; HTTP/1 is refused by hyper before this).
    pub fn too_many_headers(&self, port: Port, n: usize) -> bool {
        let over = n > self.limits.max_headers;
        if over {
            self.metrics.headers[Self::idx(port)].inc();
        }
        over
    }

    fn idle_closed(&self, port: Port) {
        self.metrics.idle[Self::idx(port)].inc();
    }
}

/// The key the per-IP tables use: an IPv4 address, or the /64 of an IPv6 address (one
/// host usually holds a whole /64).
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => ((u128::from(v6) >> 64) << 64) | (1 << 63),
        },
    }
}

/// The JSON error body every limit answers with.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_key() {
        Limits::default().validate().expect("defaults valid");
        let cases = [
            (
                Limits {
                    max_header_bytes: 100,
                    ..Limits::default()
                },
                "limits.max_header_bytes",
            ),
            (
                Limits {
                    max_json_depth: 500,
                    ..Limits::default()
                },
                "limits.max_json_depth",
            ),
            (
                Limits {
                    header_read_timeout_secs: 0,
                    ..Limits::default()
                },
                "limits.header_read_timeout_secs",
            ),
            (
                Limits {
                    unauthenticated_burst: 0,
                    ..Limits::default()
                },
                "limits.unauthenticated_burst",
            ),
        ];
        for (l, key) in cases {
            assert_eq!(l.validate().expect_err(key).key, key);
        }
        let off = Limits {
            unauthenticated_per_sec: 0,
            unauthenticated_burst: 0,
            max_connections_per_ip: 0,
            max_request_body_bytes: 0,
            ..Limits::default()
        };
        off.validate().expect("0 turns limits off");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let v4: IpAddr = "10.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(ip_key(v4), ip_key(mapped));
        assert_ne!(ip_key(v4), ip_key("10.0.0.2".parse().expect("ip")));
    }

    #[test]
    fn the_limits_table_parses_with_defaults_and_refuses_unknown_keys() {
        let c: crate::config::NodeConfig =
            toml::from_str("[limits]\nmax_headers = 50\nunauthenticated_per_sec = 0\n")
                .expect("parses");
        c.validate().expect("valid");
        assert_eq!(c.limits.max_headers, 50);
        assert_eq!(c.limits.unauthenticated_per_sec, 0);
        assert_eq!(
            c.limits.max_header_bytes,
            32 * 1024,
            "unset keys keep defaults"
        );
        let e = toml::from_str::<crate::config::NodeConfig>("[limits]\nmax_header = 5\n")
            .expect_err("typo");
        assert!(e.to_string().contains("max_header"), "{e}");
        let c: crate::config::NodeConfig =
            toml::from_str("[limits]\nmax_json_depth = 1000\n").expect("parses");
        assert_eq!(
            c.validate().expect_err("too deep").key,
            "limits.max_json_depth"
        );
    }

    #[test]
    fn flags_override_the_table() {
        let mut l = Limits::default();
        LimitArgs {
            max_headers: Some(7),
            unauthenticated_per_sec: Some(0),
            ..LimitArgs::default()
        }
        .apply(&mut l);
        assert_eq!((l.max_headers, l.unauthenticated_per_sec), (7, 0));
        assert_eq!(l.max_header_bytes, 32 * 1024);
    }
}
