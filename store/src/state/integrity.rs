//! Cross-resource rules applied to every write: references must resolve, tenants stay
//! apart (with the public-service exception), subscriptions are unique per consumer and
//! service, fallbacks form no cycle, ownership is immutable, and which children go with
//! a deleted parent.

use super::State;
use crate::command::ApplyError;
use crate::model::*;

/// A reference from one resource to another, named by the field that holds it.
pub(super) struct Ref {
    pub field: &'static str,
    pub kind: Kind,
    pub id: String,
}

pub(super) fn refs(res: &Resource) -> Vec<Ref> {
    let r = |field, kind, id: &String| Ref {
        field,
        kind,
        id: id.clone(),
    };
    let tenant = |t: &Option<String>| {
        t.iter()
            .map(|t| r("tenant", Kind::Tenant, t))
            .collect::<Vec<_>>()
    };
    match res {
        Resource::Tenant(_) | Resource::Provider(_) | Resource::Certificate(_) => vec![],
        Resource::Service(s) => vec![r("tenant", Kind::Tenant, &s.tenant)],
        Resource::Subscription(s) => vec![
            r("consumer", Kind::Consumer, &s.consumer),
            r("service", Kind::Service, &s.service),
        ],
        Resource::Consumer(c) => vec![r("tenant", Kind::Tenant, &c.tenant)],
        Resource::ApiKey(k) => vec![r("consumer", Kind::Consumer, &k.consumer)],
        Resource::Upstream(u) => tenant(&u.tenant),
        Resource::PromptTemplate(p) => {
            let mut v = tenant(&p.tenant);
            let mut models: Vec<&String> = p.versions.iter().map(|v| &v.model).collect();
            models.sort();
            models.dedup();
            v.extend(
                models
                    .into_iter()
                    .map(|m| r("versions.model", Kind::Model, m)),
            );
            v
        }
        Resource::QuotaPolicy(q) => tenant(&q.tenant),
        Resource::Route(rt) => {
            let mut v = tenant(&rt.tenant);
            if let Some(s) = &rt.service {
                v.push(r("service", Kind::Service, s));
            }
            v.push(match &rt.target {
                RouteTarget::Upstream(id) => r("target.upstream", Kind::Upstream, id),
                RouteTarget::Model(id) => r("target.model", Kind::Model, id),
                RouteTarget::Prompt(p) => {
                    r("target.prompt.template", Kind::PromptTemplate, &p.template)
                }
            });
            for p in &rt.policies {
                if let Policy::Quota(id) = p {
                    v.push(r("policies.quota", Kind::QuotaPolicy, id));
                }
            }
            v
        }
        Resource::Model(m) => {
            let mut v = tenant(&m.tenant);
            v.extend(
                m.deployments
                    .iter()
                    .map(|d| r("deployments.provider", Kind::Provider, &d.provider)),
            );
            v.extend(m.fallbacks.iter().map(|f| r("fallbacks", Kind::Model, f)));
            v.extend(m.quotas.iter().map(|q| r("quotas", Kind::QuotaPolicy, q)));
            v
        }
        Resource::Permission(p) => vec![
            r("consumer", Kind::Consumer, &p.consumer),
            match &p.target {
                PermissionTarget::Route(id) => r("target.route", Kind::Route, id),
                PermissionTarget::Model(id) => r("target.model", Kind::Model, id),
            },
        ],
    }
}

/// Resources that belong to a parent and go with it when it is deleted: a consumer's
/// keys, permissions and subscriptions; a service's subscriptions.
pub(super) fn is_child_of(child: &Resource, kind: Kind, id: &str) -> bool {
    match (kind, child) {
        (Kind::Consumer, Resource::ApiKey(k)) => k.consumer == id,
        (Kind::Consumer, Resource::Permission(p)) => p.consumer == id,
        (Kind::Consumer, Resource::Subscription(s)) => s.consumer == id,
        (Kind::Service, Resource::Subscription(s)) => s.service == id,
        _ => false,
    }
}

impl State {
    /// The tenant a resource belongs to, following consumer links for keys, permissions
    /// and subscriptions. `None` means cluster-wide (certificates and providers always).
    pub fn owner_tenant(&self, res: &Resource) -> Option<String> {
        match res {
            Resource::Tenant(t) => Some(t.id.clone()),
            Resource::Consumer(c) => Some(c.tenant.clone()),
            Resource::ApiKey(k) => self.consumer_tenant(&k.consumer),
            Resource::Permission(p) => self.consumer_tenant(&p.consumer),
            Resource::Upstream(u) => u.tenant.clone(),
            Resource::Route(r) => r.tenant.clone(),
            Resource::Model(m) => m.tenant.clone(),
            Resource::PromptTemplate(p) => p.tenant.clone(),
            Resource::QuotaPolicy(q) => q.tenant.clone(),
            Resource::Service(s) => Some(s.tenant.clone()),
            Resource::Subscription(s) => self.consumer_tenant(&s.consumer),
            Resource::Provider(_) | Resource::Certificate(_) => None,
        }
    }

    fn consumer_tenant(&self, consumer: &str) -> Option<String> {
        match &self.get(Kind::Consumer, consumer)?.resource {
            Resource::Consumer(c) => Some(c.tenant.clone()),
            _ => None,
        }
    }

    /// Cross-resource checks for a resource about to be written.
    pub(super) fn check_new(&self, res: &Resource) -> Result<(), ApplyError> {
        let (kind, id) = (res.kind(), res.id().to_string());
        let owner = self.owner_tenant(res);
        for r in refs(res) {
            let target = self
                .get(r.kind, &r.id)
                .ok_or_else(|| ApplyError::Dangling {
                    kind,
                    id: id.clone(),
                    field: r.field.to_string(),
                    target_kind: r.kind,
                    target_id: r.id.clone(),
                })?;
            if r.kind == Kind::Tenant {
                continue;
            }
            let target_owner = self.owner_tenant(&target.resource);
            if target_owner.is_some() && target_owner != owner {
                if let Some(e) = cross_tenant_exception(res, &target.resource, &target_owner) {
                    e?;
                    continue;
                }
                return Err(ApplyError::CrossTenant {
                    kind,
                    id,
                    field: r.field.to_string(),
                    target_kind: r.kind,
                    target_id: r.id,
                });
            }
        }
        if let Resource::ApiKey(k) = res {
            if self
                .key_hashes
                .get(&k.sha256)
                .is_some_and(|other| other.id != k.id)
            {
                return Err(ApplyError::Invalid {
                    kind,
                    id,
                    field: "sha256".into(),
                    message: "another key has the same secret".into(),
                });
            }
        }
        match res {
            Resource::Route(r) => {
                self.check_route_quotas(r)?;
                self.check_pinned_version(r)?;
            }
            Resource::PromptTemplate(t) => self.check_template_pins(t)?,
            Resource::QuotaPolicy(q) => self.check_quota_users(q)?,
            Resource::Model(m) => self.check_fallback_cycle(m)?,
            Resource::Subscription(s) => self.check_one_subscription(s)?,
            Resource::Service(s) => self.check_visibility(s)?,
            _ => {}
        }
        Ok(())
    }

    /// A REST route counts requests: token and cost quotas only fit routes to models.
    fn check_route_quotas(&self, r: &Route) -> Result<(), ApplyError> {
        if !matches!(r.target, RouteTarget::Upstream(_)) {
            return Ok(());
        }
        for p in &r.policies {
            let Policy::Quota(id) = p else { continue };
            if let Some(q) = self.quota_policy(id) {
                if q.metric != QuotaMetric::Requests {
                    return Err(ApplyError::Invalid {
                        kind: Kind::Route,
                        id: r.id.clone(),
                        field: "policies.quota".into(),
                        message: format!(
                            "quota policy '{id}' counts {:?}; a route to an upstream can only use request quotas",
                            q.metric
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// A route pinning a template version needs that version to exist.
    fn check_pinned_version(&self, r: &Route) -> Result<(), ApplyError> {
        let RouteTarget::Prompt(p) = &r.target else {
            return Ok(());
        };
        let Some(v) = p.version else { return Ok(()) };
        let found = match self
            .get(Kind::PromptTemplate, &p.template)
            .map(|s| &s.resource)
        {
            Some(Resource::PromptTemplate(t)) => t.version(Some(v)).is_some(),
            _ => true, // a missing template is reported as a dangling reference
        };
        if found {
            Ok(())
        } else {
            Err(ApplyError::Invalid {
                kind: Kind::Route,
                id: r.id.clone(),
                field: "target.prompt.version".into(),
                message: format!("template '{}' has no version {v}", p.template),
            })
        }
    }

    /// A template keeps every version a route pins.
    fn check_template_pins(&self, t: &PromptTemplate) -> Result<(), ApplyError> {
        for s in self.list(Kind::Route) {
            let Resource::Route(r) = &s.resource else {
                continue;
            };
            let RouteTarget::Prompt(p) = &r.target else {
                continue;
            };
            if p.template != t.id {
                continue;
            }
            if let Some(v) = p.version {
                if t.version(Some(v)).is_none() {
                    return Err(ApplyError::Invalid {
                        kind: Kind::PromptTemplate,
                        id: t.id.clone(),
                        field: "versions".into(),
                        message: format!("route '{}' pins version {v}", r.id),
                    });
                }
            }
        }
        Ok(())
    }

    /// The same rule seen from a quota policy whose metric changes under its routes.
    fn check_quota_users(&self, q: &QuotaPolicy) -> Result<(), ApplyError> {
        if q.metric == QuotaMetric::Requests {
            return Ok(());
        }
        let user = self.list(Kind::Route).find_map(|s| match &s.resource {
            Resource::Route(r)
                if matches!(r.target, RouteTarget::Upstream(_))
                    && r.policies
                        .iter()
                        .any(|p| matches!(p, Policy::Quota(id) if *id == q.id)) =>
            {
                Some(r.id.clone())
            }
            _ => None,
        });
        match user {
            Some(route) => Err(ApplyError::Invalid {
                kind: Kind::QuotaPolicy,
                id: q.id.clone(),
                field: "metric".into(),
                message: format!(
                    "route '{route}' (to an upstream) uses this quota; such routes count requests only"
                ),
            }),
            None => Ok(()),
        }
    }

    /// One subscription per (consumer, service): a second one is refused, naming the first.
    fn check_one_subscription(&self, s: &Subscription) -> Result<(), ApplyError> {
        let existing = self.list(Kind::Subscription).find(|other| {
            matches!(&other.resource, Resource::Subscription(o)
                if o.id != s.id && o.consumer == s.consumer && o.service == s.service)
        });
        match existing {
            Some(other) => Err(ApplyError::AlreadyExists {
                kind: Kind::Subscription,
                id: other.resource.id().to_string(),
            }),
            None => Ok(()),
        }
    }

    /// A service may only become tenant-private when no consumer of another tenant is
    /// subscribed to it.
    fn check_visibility(&self, s: &Service) -> Result<(), ApplyError> {
        if s.visibility == Visibility::Public {
            return Ok(());
        }
        let foreign: Vec<String> = self
            .list(Kind::Subscription)
            .filter_map(|stored| match &stored.resource {
                Resource::Subscription(sub)
                    if sub.service == s.id
                        && self.consumer_tenant(&sub.consumer).as_deref() != Some(&s.tenant) =>
                {
                    Some(format!("'{}'", sub.id))
                }
                _ => None,
            })
            .collect();
        if foreign.is_empty() {
            return Ok(());
        }
        let shown = foreign
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = foreign.len().saturating_sub(5);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        Err(ApplyError::Invalid {
            kind: Kind::Service,
            id: s.id.clone(),
            field: "visibility".into(),
            message: format!(
                "cannot become 'tenant' while consumers of other tenants are subscribed: \
                 subscription {shown}{more}; revoke and delete them first"
            ),
        })
    }

    /// Walks fallback links from `m` (as if it were stored) looking for a way back to it.
    fn check_fallback_cycle(&self, m: &Model) -> Result<(), ApplyError> {
        let fallbacks = |id: &str| -> Vec<String> {
            if id == m.id {
                return m.fallbacks.clone();
            }
            match self.get(Kind::Model, id).map(|s| &s.resource) {
                Some(Resource::Model(other)) => other.fallbacks.clone(),
                _ => Vec::new(),
            }
        };
        // Depth-first with an explicit path; the graph is small (models of one cluster).
        let mut stack = vec![(m.id.clone(), 0usize)];
        let mut path: Vec<String> = Vec::new();
        let mut done = std::collections::HashSet::new();
        while let Some((node, depth)) = stack.pop() {
            path.truncate(depth);
            if depth > 0 && node == m.id {
                path.push(node);
                let mut full = vec![m.id.clone()];
                full.extend(path.into_iter().skip(1));
                return Err(ApplyError::Cycle {
                    kind: Kind::Model,
                    id: m.id.clone(),
                    path: full,
                });
            }
            if !done.insert(node.clone()) {
                continue;
            }
            path.push(node.clone());
            for next in fallbacks(&node) {
                stack.push((next, depth + 1));
            }
        }
        Ok(())
    }
}

/// How a reference to another tenant's resource is judged when the generic rule does
/// not apply: `Some(Ok)` allows it, `Some(Err)` refuses it with a clearer error than
/// `CrossTenant`, `None` leaves it to the generic rule.
fn cross_tenant_exception(
    res: &Resource,
    target: &Resource,
    target_owner: &Option<String>,
) -> Option<Result<(), ApplyError>> {
    match (res, target) {
        // Consumers of any tenant may subscribe to a public service.
        (Resource::Subscription(_), Resource::Service(s)) if s.visibility == Visibility::Public => {
            Some(Ok(()))
        }
        (Resource::Route(r), Resource::Service(s)) => Some(Err(ApplyError::Invalid {
            kind: Kind::Route,
            id: r.id.clone(),
            field: "tenant".into(),
            message: format!(
                "a route of service '{}' must belong to the service's tenant '{}' (it has {})",
                s.id,
                target_owner.as_deref().unwrap_or_default(),
                r.tenant
                    .as_deref()
                    .map_or("none".to_string(), |t| format!("'{t}'")),
            ),
        })),
        _ => None,
    }
}

/// Fields that define where a resource belongs cannot change in place: delete and recreate.
pub(super) fn check_immutable(old: &Resource, new: &Resource) -> Result<(), ApplyError> {
    let moved = match (old, new) {
        (Resource::Consumer(a), Resource::Consumer(b)) => {
            (a.tenant != b.tenant).then_some("tenant")
        }
        (Resource::ApiKey(a), Resource::ApiKey(b)) => {
            (a.consumer != b.consumer || a.sha256 != b.sha256 || a.prefix != b.prefix)
                .then_some("consumer/sha256/prefix")
        }
        (Resource::Permission(a), Resource::Permission(b)) => {
            (a.consumer != b.consumer).then_some("consumer")
        }
        (Resource::Upstream(a), Resource::Upstream(b)) => {
            (a.tenant != b.tenant).then_some("tenant")
        }
        (Resource::Route(a), Resource::Route(b)) => (a.tenant != b.tenant).then_some("tenant"),
        (Resource::Model(a), Resource::Model(b)) => (a.tenant != b.tenant).then_some("tenant"),
        (Resource::PromptTemplate(a), Resource::PromptTemplate(b)) => {
            (a.tenant != b.tenant).then_some("tenant")
        }
        (Resource::QuotaPolicy(a), Resource::QuotaPolicy(b)) => {
            (a.tenant != b.tenant).then_some("tenant")
        }
        (Resource::Service(a), Resource::Service(b)) => (a.tenant != b.tenant).then_some("tenant"),
        (Resource::Subscription(a), Resource::Subscription(b)) => {
            (a.consumer != b.consumer || a.service != b.service).then_some("consumer/service")
        }
        _ => None,
    };
    match moved {
        Some(field) => Err(ApplyError::Invalid {
            kind: new.kind(),
            id: new.id().to_string(),
            field: field.to_string(),
            message: "cannot be changed; delete and recreate the resource".into(),
        }),
        None => Ok(()),
    }
}
