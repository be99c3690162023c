//! Turning one replicated [`ConfigSnapshot`] into what the request path reads: the
//! router, upstreams with their balancers and pools, compiled policies and the access
//! indexes. Runs once per configuration revision; state that must outlive a revision
//! (target health, connection pools, probe tasks) lives in the [`Registry`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::header::HeaderValue;
use http::uri::Scheme;
use raftgate_store::config::ConfigSnapshot;
use raftgate_store::model::{
    ActiveHealthCheck, Balancer as BalancerSpec, HashKey, Kind, Lifecycle, PathMatch,
    PermissionTarget, Policy, QuotaPolicy, Resource, Rewrite, Route, RouteTarget,
    Scheme as UpScheme, SubscriptionState, Upstream,
};
use raftgate_store::state::State;

use crate::proxy::auth::{self, Authenticator};
use crate::proxy::balancer::{Balancer, StrategyKind};
use crate::proxy::client::{self, ClientKey, UpstreamClient};
use crate::proxy::metrics::{ProxyMetrics, RouteMetrics, UpstreamMetrics};
use crate::proxy::policy::{CorsRule, HeaderOps, IpRule};
use crate::proxy::router::{Matcher, Router};
use crate::proxy::target::TargetState;
use crate::proxy::tls::{self, CertIndex};
use crate::secrets::SecretBox;

/// A route ready to serve.
#[derive(Debug)]
pub struct RouteRt {
    pub id: String,
    pub tenant: Option<String>,
    pub service: Option<ServiceRt>,
    pub backend: Backend,
    /// Checks on LLM prompts and answers (routes to models and prompts).
    pub guardrails: Option<raftgate_store::model::Guardrails>,
    pub auth: Vec<Authenticator>,
    pub ip: Option<IpRule>,
    pub cors: Option<CorsRule>,
    pub request_headers: Option<HeaderOps>,
    pub response_headers: Option<HeaderOps>,
    pub body_limit: Option<u64>,
    pub rewrite: Option<Rewrite>,
    /// Request quotas checked in phase 4, in the route's order.
    pub quotas: Vec<Arc<QuotaPolicy>>,
    /// Payload capture into the call log (`capture` policy).
    pub capture: Option<crate::proxy::capture::CaptureRt>,
    pub metrics: RouteMetrics,
}

/// What serves a route.
#[derive(Debug)]
pub enum Backend {
    Upstream(Arc<UpstreamRt>),
    /// The LLM gateway.
    Llm(LlmTarget),
}

#[derive(Debug, Clone)]
pub enum LlmTarget {
    /// OpenAI chat completions with this model, whatever `model` the body names.
    Model(String),
    /// A prompt template: the body is its variables.
    Prompt {
        template: String,
        version: Option<u32>,
    },
}

#[derive(Debug)]
pub struct ServiceRt {
    pub id: String,
    /// `Deprecation` (RFC 9745) and `Sunset` (RFC 8594) values while deprecated.
    pub deprecation: Option<HeaderValue>,
    pub sunset: Option<HeaderValue>,
}

#[derive(Debug)]
pub struct UpstreamRt {
    pub id: String,
    pub spec: Upstream,
    pub scheme: Scheme,
    pub balancer: Balancer,
    pub client: UpstreamClient,
    pub metrics: UpstreamMetrics,
}

impl UpstreamRt {
    pub fn hash_key(&self) -> Option<&HashKey> {
        match &self.spec.balancer {
            BalancerSpec::ConsistentHash(k) => Some(k),
            _ => None,
        }
    }
}

/// Everything the request path reads, for one configuration revision.
pub struct Compiled {
    pub revision: u64,
    pub snapshot: Arc<ConfigSnapshot>,
    pub router: Router<Arc<RouteRt>>,
    /// consumer → service → subscription state.
    pub subscriptions: HashMap<String, HashMap<String, SubscriptionState>>,
    /// consumer → routes granted to it by a Permission.
    pub route_grants: HashMap<String, HashSet<String>>,
    /// consumer → models granted to it by a Permission.
    pub model_grants: HashMap<String, HashSet<String>>,
    pub upstreams: Vec<Arc<UpstreamRt>>,
    pub certs: Arc<CertIndex>,
    /// model id → routes to that model carrying a `capture` policy, in id order: the
    /// built-in `/v1` API looks its capture up here instead of scanning every route.
    pub model_capture_routes: HashMap<String, Vec<Arc<Route>>>,
}

impl Compiled {
    pub fn empty() -> Compiled {
        Compiled {
            revision: u64::MAX,
            snapshot: Arc::new(ConfigSnapshot::default()),
            router: Router::default(),
            subscriptions: HashMap::new(),
            route_grants: HashMap::new(),
            model_grants: HashMap::new(),
            upstreams: Vec::new(),
            certs: Arc::new(CertIndex::default()),
            model_capture_routes: HashMap::new(),
        }
    }
}

struct Probe {
    /// The probe restarts when its check or the upstream's client settings change.
    spec: (ActiveHealthCheck, bool, ClientKey),
    task: tokio::task::JoinHandle<()>,
}

/// Slow-path state kept across compilations.
#[derive(Default)]
pub struct Registry {
    targets: HashMap<(String, String), Arc<TargetState>>,
    clients: HashMap<String, (ClientKey, UpstreamClient)>,
    probes: HashMap<(String, String), Probe>,
    route_labels: HashSet<(String, String, String)>,
    upstream_ids: HashSet<String>,
    seen_targets: HashSet<(String, String)>,
    certs: Option<(CertVersions, Arc<CertIndex>)>,
}

/// `(certificate id, revision)` of every certificate the SNI index was built from.
type CertVersions = Vec<(String, u64)>;

impl Drop for Registry {
    fn drop(&mut self) {
        for p in self.probes.values() {
            p.task.abort();
        }
    }
}

pub struct Ctx<'a> {
    pub metrics: &'a ProxyMetrics,
    pub secrets: Option<&'a SecretBox>,
}

pub fn compile(snapshot: Arc<ConfigSnapshot>, reg: &mut Registry, ctx: &Ctx) -> Compiled {
    let state = &snapshot.state;
    let mut upstreams: HashMap<String, Arc<UpstreamRt>> = HashMap::new();
    let mut live_targets = HashSet::new();
    for s in state.list(Kind::Upstream) {
        let Resource::Upstream(u) = &s.resource else {
            continue;
        };
        match compile_upstream(u, reg, ctx, &mut live_targets) {
            Ok(rt) => {
                upstreams.insert(u.id.clone(), Arc::new(rt));
            }
            Err(e) => tracing::warn!(upstream = %u.id, error = %e, "upstream skipped"),
        }
    }
    reg.targets.retain(|k, _| live_targets.contains(k));
    reg.clients.retain(|id, _| upstreams.contains_key(id));
    reg.probes.retain(|k, p| {
        let keep = live_targets.contains(k);
        if !keep {
            p.task.abort();
        }
        keep
    });
    for (up, addr) in reg.seen_targets.difference(&live_targets) {
        ctx.metrics.forget_target(up, addr);
    }
    reg.seen_targets = live_targets.clone();
    for gone in reg
        .upstream_ids
        .difference(&upstreams.keys().cloned().collect())
    {
        ctx.metrics.forget_upstream(gone);
    }
    reg.upstream_ids = upstreams.keys().cloned().collect();

    let mut entries = Vec::new();
    let mut labels = HashSet::new();
    let mut model_capture_routes: HashMap<String, Vec<Arc<Route>>> = HashMap::new();
    for s in state.list(Kind::Route) {
        let Resource::Route(r) = &s.resource else {
            continue;
        };
        if let RouteTarget::Model(m) = &r.target {
            if r.policies.iter().any(|p| matches!(p, Policy::Capture(_))) {
                model_capture_routes
                    .entry(m.clone())
                    .or_default()
                    .push(Arc::new(r.clone()));
            }
        }
        let service = match &r.service {
            Some(sid) => match state
                .get(Kind::Service, sid)
                .map(|s| (&s.resource, s.updated_at_ms))
            {
                Some((Resource::Service(svc), updated)) if svc.state.is_routable() => {
                    Some(ServiceRt {
                        id: svc.id.clone(),
                        deprecation: (svc.state == Lifecycle::Deprecated)
                            .then(|| HeaderValue::from_str(&format!("@{}", updated / 1000)).ok())
                            .flatten(),
                        sunset: (svc.state == Lifecycle::Deprecated)
                            .then(|| {
                                svc.sunset_at_ms.and_then(|ms| {
                                    HeaderValue::from_str(&http_date(ms / 1000)).ok()
                                })
                            })
                            .flatten(),
                    })
                }
                _ => continue,
            },
            None => None,
        };
        let backend = match &r.target {
            RouteTarget::Upstream(up_id) => match upstreams.get(up_id) {
                Some(u) => Backend::Upstream(u.clone()),
                None => continue,
            },
            RouteTarget::Model(m) => Backend::Llm(LlmTarget::Model(m.clone())),
            RouteTarget::Prompt(p) => Backend::Llm(LlmTarget::Prompt {
                template: p.template.clone(),
                version: p.version,
            }),
        };
        let label = (
            r.id.clone(),
            r.service.clone().unwrap_or_default(),
            r.tenant.clone().unwrap_or_default(),
        );
        match compile_route(r, service, backend, ctx, &label, state) {
            Ok((matcher, rt)) => {
                labels.insert(label);
                entries.push((matcher, Arc::new(rt)));
            }
            Err(e) => tracing::warn!(route = %r.id, error = %e, "route skipped"),
        }
    }
    for (route, service, tenant) in reg.route_labels.difference(&labels) {
        ctx.metrics.forget_route(route, service, tenant);
    }
    reg.route_labels = labels;

    let mut subscriptions: HashMap<String, HashMap<String, SubscriptionState>> = HashMap::new();
    for s in state.list(Kind::Subscription) {
        if let Resource::Subscription(sub) = &s.resource {
            subscriptions
                .entry(sub.consumer.clone())
                .or_default()
                .insert(sub.service.clone(), sub.state);
        }
    }
    let mut route_grants: HashMap<String, HashSet<String>> = HashMap::new();
    let mut model_grants: HashMap<String, HashSet<String>> = HashMap::new();
    for s in state.list(Kind::Permission) {
        if let Resource::Permission(p) = &s.resource {
            let (grants, target) = match &p.target {
                PermissionTarget::Route(r) => (&mut route_grants, r),
                PermissionTarget::Model(m) => (&mut model_grants, m),
            };
            grants
                .entry(p.consumer.clone())
                .or_default()
                .insert(target.clone());
        }
    }

    let cert_versions: CertVersions = state
        .list(Kind::Certificate)
        .map(|s| (s.resource.id().to_string(), s.revision))
        .collect();
    let certs = match &reg.certs {
        Some((v, idx)) if *v == cert_versions => idx.clone(),
        _ => {
            let idx = Arc::new(tls::build_index(state, ctx.secrets));
            reg.certs = Some((cert_versions, idx.clone()));
            idx
        }
    };

    Compiled {
        revision: state.revision(),
        router: Router::new(entries),
        subscriptions,
        route_grants,
        model_grants,
        upstreams: upstreams.into_values().collect(),
        certs,
        model_capture_routes,
        snapshot,
    }
}

fn compile_upstream(
    u: &Upstream,
    reg: &mut Registry,
    ctx: &Ctx,
    live: &mut HashSet<(String, String)>,
) -> Result<UpstreamRt, String> {
    let key = ClientKey::of(u);
    let client = match reg.clients.get(&u.id) {
        Some((k, c)) if *k == key => c.clone(),
        _ => {
            let c = client::build(&key).map_err(|e| e.to_string())?;
            reg.clients.insert(u.id.clone(), (key.clone(), c.clone()));
            c
        }
    };
    let scheme = match u.scheme {
        UpScheme::Http => Scheme::HTTP,
        UpScheme::Https => Scheme::HTTPS,
    };
    let mut targets = Vec::new();
    for t in &u.targets {
        let k = (u.id.clone(), t.address.clone());
        let state = match reg.targets.get(&k) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(
                    TargetState::new(&t.address)
                        .ok_or_else(|| format!("bad target address {:?}", t.address))?,
                );
                reg.targets.insert(k.clone(), s.clone());
                s
            }
        };
        match &u.health_check.active {
            Some(active) => {
                let spec = (active.clone(), scheme == Scheme::HTTPS, key.clone());
                let same = reg.probes.get(&k).is_some_and(|p| p.spec == spec);
                if !same {
                    if let Some(old) = reg.probes.remove(&k) {
                        old.task.abort();
                    }
                    let task = tokio::spawn(crate::proxy::health::probe_loop(
                        state.clone(),
                        format!("{}://{}", scheme.as_str(), t.address),
                        active.clone(),
                        client.legacy.clone(),
                    ));
                    reg.probes.insert(k.clone(), Probe { spec, task });
                }
            }
            None => {
                if let Some(old) = reg.probes.remove(&k) {
                    old.task.abort();
                    state.set_active_healthy(true);
                }
            }
        }
        live.insert(k);
        targets.push((state, t.weight));
    }
    let strategy = match &u.balancer {
        BalancerSpec::RoundRobin => StrategyKind::RoundRobin,
        BalancerSpec::LeastConnections => StrategyKind::LeastConnections,
        BalancerSpec::ConsistentHash(_) => StrategyKind::Hash,
    };
    Ok(UpstreamRt {
        id: u.id.clone(),
        spec: u.clone(),
        scheme,
        balancer: Balancer::new(targets, strategy),
        client,
        metrics: ctx.metrics.upstream(&u.id),
    })
}

fn compile_route(
    r: &Route,
    service: Option<ServiceRt>,
    backend: Backend,
    ctx: &Ctx,
    label: &(String, String, String),
    state: &State,
) -> Result<(Matcher, RouteRt), String> {
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.regex.clone()))
        .collect();
    let matcher = Matcher::new(
        &r.id,
        &r.hosts,
        &r.path,
        r.path_match == PathMatch::Exact,
        &r.methods,
        &headers,
        r.priority,
    )
    .map_err(|e| e.to_string())?;
    let mut rt = RouteRt {
        id: r.id.clone(),
        tenant: r.tenant.clone(),
        service,
        backend,
        guardrails: None,
        auth: Vec::new(),
        ip: None,
        cors: None,
        request_headers: None,
        response_headers: None,
        body_limit: None,
        rewrite: None,
        quotas: Vec::new(),
        capture: None,
        metrics: ctx.metrics.route(&label.0, &label.1, &label.2),
    };
    for p in &r.policies {
        match p {
            Policy::KeyAuth(k) => rt.auth.push(Authenticator::key(k)?),
            Policy::JwtAuth(j) => rt.auth.push(Authenticator::jwt(&crate::secrets::open_jwt(
                j,
                ctx.secrets,
            )?)?),
            Policy::IpRestriction(ip) => rt.ip = Some(IpRule::compile(ip)?),
            Policy::Headers(h) => {
                let (req, resp) = HeaderOps::from_rules(h)?;
                rt.request_headers = req;
                rt.response_headers = resp;
            }
            Policy::Cors(c) => rt.cors = Some(CorsRule::compile(c, &r.methods)?),
            Policy::BodyLimit(b) => rt.body_limit = Some(b.max_bytes),
            Policy::Rewrite(w) => rt.rewrite = Some(w.clone()),
            Policy::Guardrails(g) => rt.guardrails = Some(g.clone()),
            Policy::Capture(c) => rt.capture = Some(crate::proxy::capture::CaptureRt::compile(c)),
            Policy::Quota(q) => match state.quota_policy(q) {
                Some(p) => rt.quotas.push(Arc::new(p.clone())),
                None => return Err(format!("quota policy {q:?} does not exist")),
            },
        }
    }
    auth::link(&mut rt.auth);
    Ok((matcher, rt))
}

/// IMF-fixdate (RFC 9110) for Unix seconds.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates() {
        assert_eq!(super::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            super::http_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(
            super::http_date(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }
}
