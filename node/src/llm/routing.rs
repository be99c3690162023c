//! Which deployment answers: the model's deployments by priority (lower first), shuffled
//! by weight within a priority, then the fallback models' deployments. A deployment that
//! failed cools down (honouring the provider's `Retry-After`) and goes to the back of the
//! plan until the cool-down ends; the next real call after that probes it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use raftgate_store::model::{Deployment, Kind, Model, Resource};
use raftgate_store::state::State;

/// Cool-down after a failure that named no `Retry-After`.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured as a cool-down.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(300);
/// Models followed through `fallbacks` at most.
const MAX_FALLBACK_DEPTH: usize = 4;

/// One deployment to try, with the id of the model it belongs to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub model_id: Arc<str>,
    pub deployment: Deployment,
}

impl Attempt {
    pub fn key(&self) -> (String, String) {
        (
            self.deployment.provider.clone(),
            self.deployment.model.clone(),
        )
    }
}

/// Deployments that failed recently, per (provider, upstream model).
#[derive(Default)]
pub struct Cooldowns {
    until: DashMap<(String, String), Instant>,
}

impl Cooldowns {
    pub fn cool(&self, key: (String, String), d: Duration) {
        self.until.insert(key, Instant::now() + d.min(MAX_COOLDOWN));
    }

    /// Ends `a`'s cool-down, if it had one.
    pub fn clear(&self, a: &Attempt) {
        // Nearly always empty: no key to build then.
        if !self.until.is_empty() {
            self.until.remove(&a.key());
        }
    }

    pub fn is_cooling(&self, a: &Attempt, now: Instant) -> bool {
        !self.until.is_empty() && self.until.get(&a.key()).is_some_and(|t| *t > now)
    }
}

fn model<'a>(state: &'a State, id: &str) -> Option<&'a Model> {
    match &state.get(Kind::Model, id)?.resource {
        Resource::Model(m) => Some(m),
        _ => None,
    }
}

/// The ordered attempts for a call to `first`: every healthy deployment (the model's by
/// priority, then its fallbacks'), then the cooling ones in the same order — a cooling
/// deployment is tried only when nothing healthy is left.
pub fn plan<'a>(
    state: &'a State,
    first: &'a Model,
    cooldowns: &Cooldowns,
    rng: &mut impl rand::Rng,
) -> Vec<Attempt> {
    let now = Instant::now();
    let mut out = Vec::new();
    let mut cooling = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([first]);
    while let Some(m) = queue.pop_front() {
        if !seen.insert(m.id.as_str()) || seen.len() > MAX_FALLBACK_DEPTH + 1 {
            continue;
        }
        let model_id: Arc<str> = Arc::from(m.id.as_str());
        for d in order(&m.deployments, rng) {
            let a = Attempt {
                model_id: model_id.clone(),
                deployment: d,
            };
            if cooldowns.is_cooling(&a, now) {
                cooling.push(a);
            } else {
                out.push(a);
            }
        }
        queue.extend(m.fallbacks.iter().filter_map(|f| model(state, f)));
    }
    out.extend(cooling);
    out
}

/// Deployments by priority; within one priority, a weighted random order (each pick
/// draws among the rest in proportion to weight).
fn order(deployments: &[Deployment], rng: &mut impl rand::Rng) -> Vec<Deployment> {
    let mut by_priority: Vec<&Deployment> = deployments.iter().collect();
    by_priority.sort_by_key(|d| d.priority);
    let mut out = Vec::with_capacity(deployments.len());
    let mut i = 0;
    while i < by_priority.len() {
        let p = by_priority[i].priority;
        let mut group: Vec<&Deployment> = by_priority[i..]
            .iter()
            .take_while(|d| d.priority == p)
            .copied()
            .collect();
        i += group.len();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|d| u64::from(d.weight.max(1))).sum();
            let mut pick = rng.random_range(0..total.max(1));
            let mut idx = 0;
            for (j, d) in group.iter().enumerate() {
                let w = u64::from(d.weight.max(1));
                if pick < w {
                    idx = j;
                    break;
                }
                pick -= w;
            }
            out.push(group.remove(idx).clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn dep(provider: &str, weight: u32, priority: u32) -> Deployment {
        Deployment {
            provider: provider.into(),
            model: "m".into(),
            weight,
            priority,
        }
    }

    fn model(id: &str, deployments: Vec<Deployment>, fallbacks: &[&str]) -> Model {
        Model {
            id: id.into(),
            tenant: None,
            deployments,
            fallbacks: fallbacks.iter().map(|s| s.to_string()).collect(),
            timeout_ms: None,
            quotas: Vec::new(),
            default_max_tokens: None,
            pricing: None,
            cache: None,
        }
    }

    #[test]
    fn priorities_first_weights_share_and_cooling_ones_go_last() {
        let m = model(
            "m",
            vec![dep("a", 3, 0), dep("b", 1, 0), dep("backup", 1, 1)],
            &[],
        );
        let cool = Cooldowns::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut first_a = 0;
        for _ in 0..4_000 {
            let p = plan(&State::default(), &m, &cool, &mut rng);
            let names: Vec<&str> = p.iter().map(|a| a.deployment.provider.as_str()).collect();
            assert_eq!(names.len(), 3);
            assert_eq!(names[2], "backup", "priority 1 after priority 0");
            first_a += usize::from(names[0] == "a");
        }
        // Weight 3 against 1: about 75 % of first picks.
        assert!((2_800..3_200).contains(&first_a), "{first_a}");
        cool.cool(("a".into(), "m".into()), Duration::from_secs(60));
        let p = plan(&State::default(), &m, &cool, &mut rng);
        let names: Vec<&str> = p.iter().map(|a| a.deployment.provider.as_str()).collect();
        assert_eq!(names, vec!["b", "backup", "a"]);
        let a = p.last().unwrap();
        assert_eq!(&*a.model_id, "m");
        assert!(cool.is_cooling(a, Instant::now()));
        cool.clear(a);
        assert!(!cool.is_cooling(a, Instant::now()));
    }
}
