//! The load of a scenario: concurrent clients spread over the nodes the way a load
//! balancer would (round-robin or random, per client), each paced at a fixed rate and
//! recording every operation in the [`History`]. Clients never retry: an error is part
//! of the record. A client whose write got no answer continues under a new client id,
//! because that write may still take effect at any later time.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::history::{History, Op, OpKind, Outcome};
use super::setup::{register_body, register_value, Setup};
use crate::client::{AdminClient, AdminError, Read};

/// Data-plane request timeout (a paused node answers nothing).
const DATA_TIMEOUT: Duration = Duration::from_secs(2);
/// Admin request timeout: long enough for a write that waits out an election.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How many clients of each kind, and their rates.
#[derive(Debug, Clone)]
pub struct LoadShape {
    pub rest_open: usize,
    pub rest_limited: usize,
    pub llm: usize,
    pub admin_writers: usize,
    pub register_clients: usize,
    /// Requests per second of each data-plane client.
    pub data_rate: u32,
    /// Operations per second of each admin client.
    pub admin_rate: u32,
}

impl Default for LoadShape {
    fn default() -> LoadShape {
        LoadShape {
            rest_open: 2,
            rest_limited: 2,
            llm: 2,
            admin_writers: 1,
            register_clients: 3,
            data_rate: 25,
            admin_rate: 8,
        }
    }
}

/// Where the clients send requests.
#[derive(Debug, Clone)]
pub struct Targets {
    pub data_urls: Vec<String>,
    pub admin_urls: Vec<String>,
    pub token: String,
}

/// Running load; [`Load::stop`] ends it and waits for every client.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

/// State every client shares: the history, the stop flag, fresh ids.
#[derive(Clone)]
struct Ctx {
    history: History,
    stop: Arc<AtomicBool>,
    next_client: Arc<AtomicU64>,
    next_resource: Arc<AtomicU64>,
    targets: Targets,
    api_key: String,
    http: reqwest::Client,
}

impl Ctx {
    fn fresh_client(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    fn admin(&self, node: usize) -> AdminClient {
        AdminClient::with_http(&self.targets.admin_urls[node], self.http.clone())
            .with_token(&self.targets.token)
            .with_timeout(ADMIN_TIMEOUT)
    }
}

/// Picks nodes like a load balancer: round-robin from a random start, or at random.
struct Spread {
    rng: StdRng,
    round_robin: bool,
    next: usize,
    nodes: usize,
}

impl Spread {
    fn new(seed: u64, round_robin: bool, nodes: usize) -> Spread {
        let mut rng = StdRng::seed_from_u64(seed);
        let next = rng.random_range(0..nodes);
        Spread {
            rng,
            round_robin,
            next,
            nodes,
        }
    }

    fn pick(&mut self) -> usize {
        if self.round_robin {
            self.next = (self.next + 1) % self.nodes;
            self.next
        } else {
            self.rng.random_range(0..self.nodes)
        }
    }
}

impl Load {
    /// Starts every client; `seed` fixes each client's spread and choices.
    pub fn start(
        history: &History,
        targets: Targets,
        setup: &Setup,
        shape: &LoadShape,
        seed: u64,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let ctx = Ctx {
            history: history.clone(),
            stop: stop.clone(),
            next_client: Arc::new(AtomicU64::new(1)),
            next_resource: Arc::new(AtomicU64::new(1)),
            targets,
            api_key: setup.api_key.clone(),
            http,
        };
        let nodes = ctx.targets.data_urls.len();
        let mut tasks = Vec::new();
        let mut n = 0u64;
        let mut spread = || {
            n += 1;
            Spread::new(seed.wrapping_add(n), n.is_multiple_of(2), nodes)
        };
        let data_period = Duration::from_secs(1) / shape.data_rate.max(1);
        let admin_period = Duration::from_secs(1) / shape.admin_rate.max(1);
        for _ in 0..shape.rest_open {
            let path = "/chaos/open/x".to_string();
            tasks.push(tokio::spawn(data_client(
                ctx.clone(),
                spread(),
                data_period,
                path,
                None,
            )));
        }
        for _ in 0..shape.rest_limited {
            let path = "/chaos/limited/x".to_string();
            tasks.push(tokio::spawn(data_client(
                ctx.clone(),
                spread(),
                data_period,
                path,
                None,
            )));
        }
        for _ in 0..shape.llm {
            let body = json!({"model": "chaos-model", "max_tokens": 8,
                              "messages": [{"role": "user", "content": "ping"}]});
            let path = "/v1/chat/completions".to_string();
            tasks.push(tokio::spawn(data_client(
                ctx.clone(),
                spread(),
                data_period,
                path,
                Some(body),
            )));
        }
        for _ in 0..shape.admin_writers {
            tasks.push(tokio::spawn(admin_writer(
                ctx.clone(),
                spread(),
                admin_period,
            )));
        }
        let keys: Vec<String> = setup.registers.keys().cloned().collect();
        for _ in 0..shape.register_clients {
            let s = spread();
            tasks.push(tokio::spawn(register_client(
                ctx.clone(),
                s,
                admin_period,
                keys.clone(),
            )));
        }
        Load { stop, tasks }
    }

    /// Stops every client and waits until each finished its current operation.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// The JSON error code of an error answer.
fn error_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.pointer("/error/code")
        .or_else(|| v.pointer("/error/type"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// One data-plane client: GET `path`, or POST `body` to it, at a fixed rate.
async fn data_client(
    ctx: Ctx,
    mut spread: Spread,
    period: Duration,
    path: String,
    body: Option<Value>,
) {
    let client = ctx.fresh_client();
    let kind = match &body {
        Some(b) => OpKind::Llm {
            model: b["model"].as_str().unwrap_or_default().to_string(),
        },
        None => OpKind::Rest {
            route: if path.starts_with("/chaos/limited") {
                "chaos-limited".into()
            } else {
                "chaos-open".into()
            },
        },
    };
    let mut tick = ticker(period);
    while !ctx.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let node = spread.pick();
        let url = format!("{}{path}", ctx.targets.data_urls[node]);
        let req = match &body {
            Some(b) => ctx.http.post(&url).json(b),
            None => ctx.http.get(&url),
        }
        .bearer_auth(&ctx.api_key)
        .timeout(DATA_TIMEOUT);
        let invoke_us = ctx.history.now_us();
        let outcome = match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                Outcome::Status {
                    status: status.as_u16(),
                    code: (!status.is_success()).then(|| error_code(&text)).flatten(),
                }
            }
            Err(e) => Outcome::NoAnswer {
                error: e.to_string(),
            },
        };
        ctx.history.push(Op {
            client,
            node,
            kind: kind.clone(),
            invoke_us,
            complete_us: ctx.history.now_us(),
            outcome,
        });
    }
}

/// The outcome of an admin call.
fn admin_outcome(result: &Result<Value, AdminError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Status {
            status: 200,
            code: None,
        },
        Err(e) => match e.status() {
            Some(s) => Outcome::Status {
                status: s.as_u16(),
                code: e.code().map(str::to_string),
            },
            None => Outcome::NoAnswer {
                error: e.to_string(),
            },
        },
    }
}

/// Runs one admin call and records it; returns whether it succeeded and whether its
/// outcome is unknown (the caller then continues under a new client id).
async fn record_admin<F>(ctx: &Ctx, client: u64, node: usize, kind: OpKind, call: F) -> (bool, bool)
where
    F: Future<Output = Result<Value, AdminError>>,
{
    let invoke_us = ctx.history.now_us();
    let result = call.await;
    let outcome = admin_outcome(&result);
    let ok = outcome.is_success();
    let unknown = !ok && !outcome.is_definite_failure();
    ctx.history.push(Op {
        client,
        node,
        kind,
        invoke_us,
        complete_us: ctx.history.now_us(),
        outcome,
    });
    (ok, unknown)
}

/// An admin call in flight, whichever kind of write it is.
type AdminCall = Pin<Box<dyn Future<Output = Result<Value, AdminError>> + Send>>;

/// Creates routes and API keys, deletes some it created, and changes the limit of the
/// `chaos-churn` quota policy, in turn.
async fn admin_writer(ctx: Ctx, mut spread: Spread, period: Duration) {
    let mut client = ctx.fresh_client();
    let mut created: Vec<(String, String)> = Vec::new();
    let mut tick = ticker(period);
    let mut step = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        step += 1;
        let node = spread.pick();
        let admin = ctx.admin(node);
        let n = ctx.next_resource.fetch_add(1, Ordering::Relaxed);
        let (kind, call): (OpKind, AdminCall) = match step % 5 {
            0 | 1 => {
                let id = format!("chaos-w-{n}");
                let body = json!({"id": id, "tenant": "chaos", "service": "chaos-svc",
                    "path": format!("/chaos/w/{n}"), "target": {"upstream": "chaos-echo"},
                    "policies": [{"key_auth": {}}]});
                let kind = OpKind::Create {
                    collection: "routes".into(),
                    id: id.clone(),
                };
                created.push(("routes".into(), id));
                (
                    kind,
                    Box::pin(async move { admin.create("routes", &body).await }) as AdminCall,
                )
            }
            2 => {
                let id = format!("chaos-k-{n}");
                let body = json!({"id": id, "name": format!("key {n}")});
                let kind = OpKind::Create {
                    collection: "api_keys".into(),
                    id: id.clone(),
                };
                created.push(("api_keys".into(), id));
                let call = async move { admin.create("consumers/chaos-app/keys", &body).await };
                (kind, Box::pin(call) as AdminCall)
            }
            3 if created.len() > 2 => {
                let (collection, id) = created.remove(created.len() / 2);
                let kind = OpKind::Delete {
                    collection: collection.clone(),
                    id: id.clone(),
                };
                let call = async move { admin.delete(&collection, &id).await };
                (kind, Box::pin(call) as AdminCall)
            }
            _ => {
                let limit = 1000 + n;
                let body = json!({"id": "chaos-churn", "tenant": "chaos", "scope": ["route"],
                    "metric": "requests", "window": "hour", "limit": limit});
                let kind = OpKind::QuotaChange {
                    id: "chaos-churn".into(),
                    limit,
                };
                let call =
                    async move { admin.update("quota_policies", "chaos-churn", &body).await };
                (kind, Box::pin(call) as AdminCall)
            }
        };
        let (_, unknown) = record_admin(&ctx, client, node, kind, call).await;
        if unknown {
            client = ctx.fresh_client();
        }
    }
}

/// Reads (`consistent=true`) and writes unique values to the register resources.
async fn register_client(ctx: Ctx, mut spread: Spread, period: Duration, keys: Vec<String>) {
    let mut client = ctx.fresh_client();
    let mut rng = StdRng::seed_from_u64(spread.rng.random());
    let mut tick = ticker(period);
    while !ctx.stop.load(Ordering::Relaxed) && !keys.is_empty() {
        tick.tick().await;
        let node = spread.pick();
        let admin = ctx.admin(node);
        let key = keys[rng.random_range(0..keys.len())].clone();
        if rng.random_bool(0.5) {
            let value = ctx.next_resource.fetch_add(1, Ordering::Relaxed);
            let kind = OpKind::RegWrite {
                key: key.clone(),
                value,
            };
            let body = register_body(&key, value);
            let (_, unknown) = record_admin(
                &ctx,
                client,
                node,
                kind,
                admin.update("tenants", &key, &body),
            )
            .await;
            if unknown {
                client = ctx.fresh_client();
            }
        } else {
            let invoke_us = ctx.history.now_us();
            let result = admin.get("tenants", &key, Read::Consistent).await;
            let value = result.as_ref().ok().and_then(register_value);
            let outcome = admin_outcome(&result);
            ctx.history.push(Op {
                client,
                node,
                kind: OpKind::RegRead { key, value },
                invoke_us,
                complete_us: ctx.history.now_us(),
                outcome,
            });
        }
    }
}

/// Whether a data-plane call was answered successfully: a 2xx, or a 429 (the quota
/// said no — a correct answer). Anything else (5xx, a 4xx the setup does not expect, no
/// answer) is a failure.
pub fn answered(outcome: &Outcome) -> bool {
    outcome
        .status()
        .is_some_and(|s| StatusCode::from_u16(s).is_ok_and(|s| s.is_success()) || s == 429)
}
