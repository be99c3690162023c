//! Global quotas across a 3-node cluster of real `raftgate serve` processes (see
//! `docs/quotas.md`): concurrent clients spread over every node's data plane must never
//! get more than the limit admitted in total, and should get close to it, also while the
//! leader is killed, a node is paused (SIGSTOP) or cut off from the others (iptables).
//! Plus window rollover, idle buckets handing units back and asking again, the usage API,
//! the `raftgate usage` CLI and the quota metrics.
//!
//! Admissions are counted twice: the 2xx answers the clients saw, and the requests the
//! test upstream received (a request admitted by a node the client gave up on, a paused
//! one for example, still reaches the upstream). Both must stay within the limit.
//!
//! Run one at a time (`-- --test-threads 1`; a shared lock enforces it anyway): each test
//! runs three gateways and the clients on what may be a 2-core machine. Every load run
//! has a deadline. Needs the debug binary (`cargo build --workspace`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use raftgate_chaos::cli::{run, CLI_TIMEOUT};
use raftgate_chaos::{
    wait, ChaosError, ClusterBuilder, LocalCluster, TestUpstream, UpstreamOptions,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinSet;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Held for the whole test: one cluster at a time.
async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The fixed budget of the load tests.
const LIMIT: u64 = 600;
/// Client tasks; task `t` talks to node `t % 3` only, so a node that hangs (paused) or
/// refuses connections (killed) slows only its own tasks.
const TASKS: usize = 12;
/// A load run stops after this many answers (3x the limit)...
const DEMAND: u64 = 3 * LIMIT;
/// ...or after this long, whichever comes first.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// Per-request bound (a grant wait is at most 1.5 s; a paused node never answers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Admissions must reach this share of the limit when demand is 3x the limit.
const MIN_SHARE: f64 = 0.95;

// ------------------------------------------------------------------------- fixture

/// A formed cluster with upstream `u`, tenant `t1`, consumer `c1`, API key `k1`, quota
/// policy `q1` and route `r` (`/q`: `key_auth` + `quota q1`).
struct Fixture {
    cluster: LocalCluster,
    upstream: TestUpstream,
    /// The plaintext of key `k1`.
    key: String,
    token: String,
    /// `http://HTTP_ADDR` of every node.
    bases: Vec<String>,
    limit: u64,
}

fn quota_policy(window: &str, limit: u64) -> Value {
    json!({"id": "q1", "scope": ["api_key"], "metric": "requests", "window": window,
           "limit": limit, "mode": "strict", "fail_open": false})
}

async fn fixture(builder: ClusterBuilder, policy: Value) -> Fixture {
    let cluster = builder.form().await.expect("a 3-node cluster forms");
    let upstream = TestUpstream::start(UpstreamOptions::named("quota"))
        .await
        .expect("the test upstream starts");
    let admin = cluster.client(0).expect("admin client");
    let create = |collection: &'static str, body: Value| {
        let admin = admin.clone();
        async move {
            admin
                .create(collection, &body)
                .await
                .unwrap_or_else(|e| panic!("creating {collection} {body}: {e}"))
        }
    };
    create(
        "upstreams",
        json!({"id": "u", "targets": [{"address": upstream.addr().to_string(), "weight": 1}]}),
    )
    .await;
    create("tenants", json!({"id": "t1"})).await;
    create("consumers", json!({"id": "c1", "tenant": "t1"})).await;
    let raw = admin
        .raw(
            Method::POST,
            "/admin/v1/consumers/c1/keys",
            Some(("application/json", br#"{"id":"k1"}"#.to_vec())),
        )
        .await
        .expect("POST /admin/v1/consumers/c1/keys");
    assert!(
        raw.status.is_success(),
        "creating key k1: {} {}",
        raw.status,
        raw.body
    );
    let answer: Value = serde_json::from_str(&raw.body).expect("the key answer is JSON");
    assert_eq!(
        answer["id"], "k1",
        "the key keeps the id asked for: {answer}"
    );
    let key = answer["key"]
        .as_str()
        .unwrap_or_else(|| panic!("the key answer has no plaintext 'key': {answer}"))
        .to_string();
    let limit = policy["limit"].as_u64().expect("the policy has a limit");
    create("quota_policies", policy).await;
    create(
        "routes",
        json!({"id": "r", "path": "/q", "target": {"upstream": "u"},
               "policies": [{"key_auth": {}}, {"quota": "q1"}]}),
    )
    .await;
    cluster
        .wait_converged(
            &["api_keys", "quota_policies", "routes", "upstreams"],
            Duration::from_secs(20),
        )
        .await
        .expect("every node holds the quota configuration");
    let bases = (0..cluster.len())
        .map(|i| format!("http://{}", cluster.info(i).expect("node info").http_addr))
        .collect();
    let token = cluster
        .token()
        .expect("the cluster has a token")
        .to_string();
    Fixture {
        cluster,
        upstream,
        key,
        token,
        bases,
        limit,
    }
}

/// Keys `k2..=kN` of consumer `c1` (plaintexts).
async fn more_keys(fx: &Fixture, n: usize) -> Vec<String> {
    let admin = fx.cluster.client(0).expect("admin client");
    let mut keys = Vec::new();
    for i in 2..=n {
        let body = format!(r#"{{"id":"k{i}"}}"#).into_bytes();
        let raw = admin
            .raw(
                Method::POST,
                "/admin/v1/consumers/c1/keys",
                Some(("application/json", body)),
            )
            .await
            .expect("POST /admin/v1/consumers/c1/keys");
        assert!(
            raw.status.is_success(),
            "key k{i}: {} {}",
            raw.status,
            raw.body
        );
        let v: Value = serde_json::from_str(&raw.body).expect("JSON");
        keys.push(v["key"].as_str().expect("plaintext key").to_string());
    }
    fx.cluster
        .wait_converged(&["api_keys"], Duration::from_secs(20))
        .await
        .expect("every node holds the keys");
    keys
}

// ------------------------------------------------------------------------- load

/// Answers of one node, as the clients saw them.
#[derive(Default)]
struct NodeTally {
    ok: AtomicU64,
    limited: AtomicU64,
    unavailable: AtomicU64,
    /// No HTTP answer: connection refused or reset (killed node), timeout (paused node).
    no_answer: AtomicU64,
    other: AtomicU64,
    /// Unix ms of the first `503 quota_unavailable` (0: none yet).
    first_unavailable_ms: AtomicU64,
}

#[derive(Default)]
struct Tally {
    nodes: Vec<NodeTally>,
    /// HTTP answers of any status.
    answered: AtomicU64,
    /// 2xx per wall-clock second in which the request was sent.
    ok_by_second: StdMutex<BTreeMap<u64, u64>>,
    /// Contract violations seen in answers (at most a few kept).
    problems: StdMutex<Vec<String>>,
    problem_count: AtomicU64,
}

impl Tally {
    fn sum(&self, f: impl Fn(&NodeTally) -> &AtomicU64) -> u64 {
        self.nodes
            .iter()
            .map(|n| f(n).load(Ordering::Relaxed))
            .sum()
    }

    fn ok(&self) -> u64 {
        self.sum(|n| &n.ok)
    }

    fn problem(&self, p: String) {
        self.problem_count.fetch_add(1, Ordering::Relaxed);
        let mut v = self.problems.lock().expect("problems lock");
        if v.len() < 10 {
            v.push(p);
        }
    }

    fn summary(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "node {}: 2xx {} / 429 {} / 503 {} / no answer {} / other {}",
                    i + 1,
                    n.ok.load(Ordering::Relaxed),
                    n.limited.load(Ordering::Relaxed),
                    n.unavailable.load(Ordering::Relaxed),
                    n.no_answer.load(Ordering::Relaxed),
                    n.other.load(Ordering::Relaxed)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Sends only between `FROM_MS` and `UNTIL_MS` of each wall-clock second, at most
/// `per_second` requests per second, in seconds `first..=last`: no request straddles a
/// window boundary of a `second` window.
#[derive(Clone, Copy)]
struct Pacing {
    per_second: u64,
    first: u64,
    last: u64,
}

const FROM_MS: u64 = 150;
const UNTIL_MS: u64 = 850;

#[derive(Clone)]
struct LoadSpec {
    bases: Vec<String>,
    /// Plaintext API keys, used in turn.
    keys: Vec<String>,
    limit: u64,
    /// Stop after this many answers.
    demand: u64,
    deadline: Instant,
    /// `503 quota_unavailable` is expected (fault runs).
    allow_unavailable: bool,
    /// A `fixed` window: no `RateLimit-Reset`.
    fixed: bool,
    pacing: Option<Pacing>,
}

/// A load run in progress: tasks on the runtime, counters shared with the test.
struct Load {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
    started: Instant,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn start_load(spec: LoadSpec) -> Load {
    let tally = Arc::new(Tally {
        nodes: (0..spec.bases.len())
            .map(|_| NodeTally::default())
            .collect(),
        ..Tally::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("reqwest client");
    let sent_by_second: Arc<StdMutex<BTreeMap<u64, u64>>> = Arc::default();
    let mut tasks = JoinSet::new();
    for t in 0..TASKS {
        let node = t % spec.bases.len();
        let (spec, tally, stop, http) = (spec.clone(), tally.clone(), stop.clone(), http.clone());
        let sent_by_second = sent_by_second.clone();
        tasks.spawn(async move {
            let url = format!("{}/q", spec.bases[node]);
            let mut turn = t;
            loop {
                if stop.load(Ordering::Relaxed)
                    || tally.answered.load(Ordering::Relaxed) >= spec.demand
                    || Instant::now() >= spec.deadline
                {
                    return;
                }
                if let Some(p) = spec.pacing {
                    let now = now_ms();
                    let (sec, frac) = (now / 1000, now % 1000);
                    if sec > p.last {
                        return;
                    }
                    let wait_until = if sec < p.first {
                        Some(p.first * 1000 + FROM_MS)
                    } else if frac < FROM_MS {
                        Some(sec * 1000 + FROM_MS)
                    } else if frac >= UNTIL_MS {
                        Some((sec + 1) * 1000 + FROM_MS)
                    } else {
                        let mut sent = sent_by_second.lock().expect("pacing lock");
                        let n = sent.entry(sec).or_default();
                        if *n >= p.per_second {
                            Some((sec + 1) * 1000 + FROM_MS)
                        } else {
                            *n += 1;
                            None
                        }
                    };
                    if let Some(at) = wait_until {
                        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await;
                        continue;
                    }
                }
                let sent_ms = now_ms();
                turn += 1;
                let key = &spec.keys[turn % spec.keys.len()];
                let answer = http.get(&url).bearer_auth(key).send().await;
                let n = &tally.nodes[node];
                let resp = match answer {
                    Ok(r) => r,
                    Err(_) => {
                        n.no_answer.fetch_add(1, Ordering::Relaxed);
                        // A dead node refuses at once: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let status = resp.status();
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let (limit_h, reset_h, retry_after) = (
                    header("ratelimit-limit"),
                    header("ratelimit-reset"),
                    header("retry-after"),
                );
                let body = resp.text().await.unwrap_or_default();
                tally.answered.fetch_add(1, Ordering::Relaxed);
                let code = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
                    v.pointer("/error/code")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
                let who = format!("node {}", node + 1);
                if status.is_success() {
                    n.ok.fetch_add(1, Ordering::Relaxed);
                    *tally
                        .ok_by_second
                        .lock()
                        .expect("tally lock")
                        .entry(sent_ms / 1000)
                        .or_default() += 1;
                    if limit_h.as_deref() != Some(spec.limit.to_string().as_str()) {
                        tally.problem(format!(
                            "{who}: 2xx with RateLimit-Limit {limit_h:?}, expected {}",
                            spec.limit
                        ));
                    }
                    match (&reset_h, spec.fixed) {
                        (Some(r), true) => tally.problem(format!(
                            "{who}: 2xx of a fixed budget with RateLimit-Reset {r}"
                        )),
                        (None, false) => {
                            tally.problem(format!("{who}: 2xx without RateLimit-Reset"))
                        }
                        _ => {}
                    }
                } else if status == StatusCode::TOO_MANY_REQUESTS
                    && code.as_deref() == Some("rate_limited")
                {
                    n.limited.fetch_add(1, Ordering::Relaxed);
                    // Retry-After is the time to the window's end: a fixed budget has none.
                    match (&retry_after, spec.fixed) {
                        (None, false) => {
                            tally.problem(format!("{who}: 429 without Retry-After: {body}"))
                        }
                        (Some(r), true) => tally.problem(format!(
                            "{who}: 429 of a fixed budget with Retry-After {r}: {body}"
                        )),
                        _ => {}
                    }
                } else if status == StatusCode::SERVICE_UNAVAILABLE
                    && code.as_deref() == Some("quota_unavailable")
                {
                    n.unavailable.fetch_add(1, Ordering::Relaxed);
                    let _ = n.first_unavailable_ms.compare_exchange(
                        0,
                        now_ms(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    if retry_after.as_deref() != Some("1") {
                        tally.problem(format!("{who}: 503 with Retry-After {retry_after:?}"));
                    }
                    if !spec.allow_unavailable {
                        tally.problem(format!(
                            "{who}: 503 quota_unavailable without a fault: {body}"
                        ));
                    }
                } else {
                    n.other.fetch_add(1, Ordering::Relaxed);
                    tally.problem(format!("{who}: unexpected {status}: {body}"));
                }
            }
        });
    }
    Load {
        tally,
        stop,
        tasks,
        started: Instant::now(),
    }
}

impl Load {
    /// Waits until the clients saw `n` admissions (panics after `RUN_DEADLINE`).
    async fn wait_ok(&self, n: u64) {
        while self.tally.ok() < n {
            assert!(
                self.started.elapsed() < RUN_DEADLINE,
                "only {} of {n} admissions after {RUN_DEADLINE:?}: {}",
                self.tally.ok(),
                self.tally.summary()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for every task to stop by itself (demand, deadline or pacing end).
    async fn finish(mut self) -> (Arc<Tally>, Duration) {
        while let Some(r) = self.tasks.join_next().await {
            r.expect("a load task panicked");
        }
        self.stop.store(true, Ordering::Relaxed);
        (self.tally, self.started.elapsed())
    }
}

fn load_spec(fx: &Fixture, allow_unavailable: bool) -> LoadSpec {
    LoadSpec {
        bases: fx.bases.clone(),
        keys: vec![fx.key.clone()],
        limit: fx.limit,
        demand: DEMAND,
        deadline: Instant::now() + RUN_DEADLINE,
        allow_unavailable,
        fixed: true,
        pacing: None,
    }
}

/// The bounds every fixed-budget run must meet: nothing above the limit (as the clients
/// and as the upstream count it), at least 95% of it, and no contract violation.
fn check_budget(
    what: &str,
    fx: &Fixture,
    tally: &Tally,
    elapsed: Duration,
    min_share: Option<f64>,
) {
    let ok = tally.ok();
    let reached = fx.upstream.requests();
    let share = ok as f64 / fx.limit as f64;
    println!(
        "[{what}] admitted {ok}/{} = {share:.3} of the limit (upstream saw {reached}) in {:.1}s; \
         answers {}; {}",
        fx.limit,
        elapsed.as_secs_f64(),
        tally.answered.load(Ordering::Relaxed),
        tally.summary()
    );
    let problems = tally.problems.lock().expect("problems lock").clone();
    assert!(
        problems.is_empty(),
        "[{what}] {} contract violations, first ones: {problems:#?}",
        tally.problem_count.load(Ordering::Relaxed)
    );
    assert!(
        ok <= fx.limit,
        "[{what}] {ok} 2xx answers for a limit of {}",
        fx.limit
    );
    assert!(
        reached <= fx.limit,
        "[{what}] the upstream received {reached} requests for a limit of {}",
        fx.limit
    );
    assert!(
        ok <= reached,
        "[{what}] {ok} 2xx but the upstream saw only {reached}"
    );
    if let Some(min) = min_share {
        assert!(
            share >= min,
            "[{what}] only {ok} of {} admitted ({share:.3} < {min}) with demand 3x the limit",
            fx.limit
        );
    }
}

// ------------------------------------------------------------------------- admin helpers

async fn admin_get(cluster: &LocalCluster, i: usize, path: &str) -> (StatusCode, Value) {
    let raw = cluster
        .client(i)
        .expect("admin client")
        .raw(Method::GET, path, None)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on node {}: {e}", i + 1));
    (
        raw.status,
        serde_json::from_str(&raw.body).unwrap_or(Value::Null),
    )
}

/// The one usage item of `q1` (`consistent=true` when asked), from node `i`.
async fn usage_item(cluster: &LocalCluster, i: usize, consistent: bool) -> Result<Value, String> {
    let path = format!(
        "/admin/v1/usage?policy=q1{}",
        if consistent { "&consistent=true" } else { "" }
    );
    let (status, v) = admin_get(cluster, i, &path).await;
    if !status.is_success() {
        return Err(format!("GET {path} on node {}: {status} {v}", i + 1));
    }
    match v["items"].as_array().map(Vec::as_slice) {
        Some([item]) => Ok(item.clone()),
        _ => Err(format!(
            "GET {path} on node {}: not exactly one item: {v}",
            i + 1
        )),
    }
}

/// `granted_by_node` of a usage item as node id → units.
fn granted_by_node(item: &Value) -> BTreeMap<u64, u64> {
    item["granted_by_node"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.parse()
                    .unwrap_or_else(|_| panic!("node id {k:?} in {item}")),
                v.as_u64()
                    .unwrap_or_else(|| panic!("units of node {k} in {item}")),
            )
        })
        .collect()
}

/// The sum of every sample of `name` whose labels include all `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            if n != name {
                return None;
            }
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

async fn metrics_of(cluster: &LocalCluster, i: usize) -> String {
    let raw = cluster
        .client(i)
        .expect("admin client")
        .raw(Method::GET, "/metrics", None)
        .await
        .unwrap_or_else(|e| panic!("GET /metrics on node {}: {e}", i + 1));
    assert!(raw.status.is_success(), "GET /metrics: {}", raw.status);
    raw.body
}

// ------------------------------------------------------------------------- tests

/// (a) + (f): a fixed budget of 600 under 3x demand spread over three nodes; then the
/// usage API on every node, the `raftgate usage` CLI and the quota metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_budget_is_never_exceeded_across_three_nodes_and_usage_reports_it() {
    let _serial = serial().await;
    let fx = fixture(ClusterBuilder::new(3), quota_policy("fixed", LIMIT)).await;
    let (tally, elapsed) = start_load(load_spec(&fx, false)).finish().await;
    check_budget("no fault", &fx, &tally, elapsed, Some(MIN_SHARE));
    let ok = tally.ok();
    assert_eq!(
        fx.upstream.requests(),
        ok,
        "every admission reached the upstream once"
    );
    let limited = tally.sum(|n| &n.limited);

    // Usage: `used` is reported about once a second; every node answers from its replica.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..fx.cluster.len() {
        let what = format!("node {} to report used = {ok}", i + 1);
        let item = wait::until(&what, Duration::from_secs(10), || async {
            let item = usage_item(&fx.cluster, i, false).await?;
            if item["used"].as_u64() == Some(ok) {
                Ok(item)
            } else {
                Err(item.to_string())
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        println!("[usage] node {}: {item}", i + 1);
        assert_eq!(item["policy"], "q1", "{item}");
        assert_eq!(item["metric"], "requests", "{item}");
        assert_eq!(item["window"], "fixed", "{item}");
        assert_eq!(item["mode"], "strict", "{item}");
        assert_eq!(
            item["scope"],
            json!({"api_key": "k1"}),
            "the key's id, not its secret: {item}"
        );
        assert_eq!(
            item["window_end_ms"],
            Value::Null,
            "a fixed budget never ends: {item}"
        );
        assert_eq!(item["current"], true, "{item}");
        assert_eq!(item["limit"], LIMIT, "{item}");
        let granted = item["granted"].as_u64().expect("granted is a number");
        assert!(
            granted <= LIMIT && granted >= ok,
            "used {ok} <= granted {granted} <= limit: {item}"
        );
        let by_node = granted_by_node(&item);
        assert_eq!(
            by_node.values().sum::<u64>(),
            granted,
            "granted_by_node adds up: {item}"
        );
        assert_eq!(
            item["remaining"].as_u64(),
            Some(LIMIT - granted.max(ok)),
            "remaining = limit - max(granted, used): {item}"
        );
    }

    // Filters and a bad query.
    let (_, v) = admin_get(
        &fx.cluster,
        1,
        "/admin/v1/usage?policy=q1&api_key=k1&window=current",
    )
    .await;
    assert_eq!(
        v["items"].as_array().map(Vec::len),
        Some(1),
        "filter api_key=k1: {v}"
    );
    let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?api_key=nobody").await;
    assert_eq!(v["items"], json!([]), "filter api_key=nobody: {v}");
    let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?policy=q1&window=previous").await;
    assert_eq!(
        v["items"],
        json!([]),
        "a fixed budget has no previous window: {v}"
    );
    let (status, v) = admin_get(&fx.cluster, 2, "/admin/v1/usage?policy=q1&window=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "window=bogus: {v}");
    assert!(
        v.pointer("/error/code").and_then(Value::as_str).is_some(),
        "a JSON error: {v}"
    );
    let raw = fx
        .cluster
        .anon_client(0)
        .expect("client")
        .raw(Method::GET, "/admin/v1/usage?policy=q1", None)
        .await
        .expect("GET usage without a token");
    assert_eq!(
        raw.status,
        StatusCode::UNAUTHORIZED,
        "usage needs a token: {}",
        raw.body
    );

    // The CLI prints what the API answers (units handed back by idle nodes may move
    // `granted` between two reads, so compare with a read on either side).
    let url = fx.cluster.admin_url(0).expect("admin url");
    let args = [
        "usage", "--server", &url, "--token", &fx.token, "--policy", "q1", "--json",
    ];
    let mut matched = false;
    for _ in 0..3 {
        let before = usage_item(&fx.cluster, 0, false).await.expect("usage");
        let out = run(fx.cluster.binary(), &args, &[], CLI_TIMEOUT)
            .await
            .expect("raftgate usage runs");
        assert_eq!(
            out.code,
            Some(0),
            "raftgate usage --json: {}",
            out.describe()
        );
        let printed: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "raftgate usage --json prints JSON ({e}): {}",
                out.describe()
            )
        });
        let after = usage_item(&fx.cluster, 0, false).await.expect("usage");
        let items = printed["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "one item: {printed}");
        if items[0] == before || items[0] == after {
            matched = true;
            break;
        }
        println!(
            "[cli] differs from the API (moving?): {} vs {after}",
            items[0]
        );
    }
    assert!(matched, "raftgate usage --json prints the API's item");
    let out = run(
        fx.cluster.binary(),
        &[
            "usage", "--server", &url, "--token", &fx.token, "--policy", "q1",
        ],
        &[],
        CLI_TIMEOUT,
    )
    .await
    .expect("raftgate usage runs");
    assert_eq!(out.code, Some(0), "raftgate usage: {}", out.describe());
    assert!(
        out.stdout.contains("q1") && out.stdout.contains("api_key=k1"),
        "the table names the policy and scope: {}",
        out.describe()
    );

    // Metrics: admissions and exhaustion refusals add up over the nodes.
    let (mut admitted, mut exhausted, mut writes) = (0.0, 0.0, Vec::new());
    for i in 0..fx.cluster.len() {
        let text = metrics_of(&fx.cluster, i).await;
        admitted += metric(&text, "raftgate_quota_admitted_total", &[("policy", "q1")]);
        exhausted += metric(
            &text,
            "raftgate_quota_rejected_total",
            &[("policy", "q1"), ("reason", "exhausted")],
        );
        writes.push(metric(
            &text,
            "raftgate_quota_sync_writes_total",
            &[("result", "ok")],
        ));
        assert!(
            text.contains("raftgate_quota_buckets")
                && text.contains("raftgate_quota_granted_units_total"),
            "node {} exports the quota gauges",
            i + 1
        );
    }
    println!(
        "[metrics] admitted {admitted}, rejected exhausted {exhausted}, sync writes ok per node {writes:?} \
         (run {:.1}s)",
        elapsed.as_secs_f64()
    );
    assert_eq!(
        admitted as u64, ok,
        "raftgate_quota_admitted_total over the nodes"
    );
    assert_eq!(
        exhausted as u64, limited,
        "raftgate_quota_rejected_total{{reason=exhausted}}"
    );
}

/// (b) `second` windows: 40 per second, 3x demand per second sent between x.150 and x.850
/// of each second for four seconds; each second's admissions stay within [0.9, 1] x 40.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_windows_roll_over_and_each_window_admits_its_limit() {
    const PER_SECOND: u64 = 40;
    let _serial = serial().await;
    let fx = fixture(ClusterBuilder::new(3), quota_policy("second", PER_SECOND)).await;
    let first = now_ms() / 1000 + 1;
    let last = first + 3;
    let spec = LoadSpec {
        demand: u64::MAX,
        fixed: false,
        pacing: Some(Pacing {
            per_second: 3 * PER_SECOND,
            first,
            last,
        }),
        ..load_spec(&fx, false)
    };
    let (tally, elapsed) = start_load(spec).finish().await;
    let by_second = tally.ok_by_second.lock().expect("lock").clone();
    let per: Vec<u64> = (first..=last)
        .map(|s| by_second.get(&s).copied().unwrap_or(0))
        .collect();
    println!(
        "[second windows] limit {PER_SECOND}/s, admitted per second {per:?} in {:.1}s; {}",
        elapsed.as_secs_f64(),
        tally.summary()
    );
    let problems = tally.problems.lock().expect("problems lock").clone();
    assert!(problems.is_empty(), "contract violations: {problems:#?}");
    assert_eq!(
        by_second
            .keys()
            .filter(|s| !(first..=last).contains(*s))
            .count(),
        0,
        "requests only in the paced seconds: {by_second:?}"
    );
    for (s, n) in (first..=last).zip(&per) {
        assert!(
            *n <= PER_SECOND,
            "second {s}: {n} admitted for a limit of {PER_SECOND}"
        );
        assert!(
            *n as f64 >= 0.9 * PER_SECOND as f64,
            "second {s}: only {n} of {PER_SECOND} admitted with 3x demand (per second: {per:?})"
        );
    }
    assert!(
        fx.upstream.requests() <= PER_SECOND * 4,
        "upstream saw {}",
        fx.upstream.requests()
    );
}

/// (c) The leader is killed (kill -9) once a third of the budget is used; load goes on
/// against all three nodes (the dead one refuses connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_run_never_exceeds_the_budget() {
    let _serial = serial().await;
    let mut fx = fixture(ClusterBuilder::new(3), quota_policy("fixed", LIMIT)).await;
    let leader = fx.cluster.wait_leader().await.expect("a leader");
    let load = start_load(load_spec(&fx, true));
    load.wait_ok(LIMIT / 3).await;
    fx.cluster.kill9(leader).expect("kill -9 the leader");
    println!(
        "[leader killed] killed node {} at {} admissions",
        leader + 1,
        load.tally.ok()
    );
    let (tally, elapsed) = load.finish().await;
    check_budget("leader killed", &fx, &tally, elapsed, Some(MIN_SHARE));
    let survivor = fx.cluster.running()[0];
    if let Ok(item) = usage_item(&fx.cluster, survivor, true).await {
        println!("[leader killed] ledger: {item}");
    }
}

/// (d) A follower paused with SIGSTOP once a third of the budget is used, resumed after
/// the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_paused_mid_run_never_exceeds_the_budget() {
    paused_mid_run(false).await;
}

/// (d') The leader paused with SIGSTOP once a third of the budget is used (the others
/// elect a new one), resumed after the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_paused_mid_run_never_exceeds_the_budget() {
    paused_mid_run(true).await;
}

async fn paused_mid_run(pause_leader: bool) {
    let what = if pause_leader {
        "leader paused"
    } else {
        "follower paused"
    };
    let _serial = serial().await;
    let mut fx = fixture(ClusterBuilder::new(3), quota_policy("fixed", LIMIT)).await;
    let leader = fx.cluster.wait_leader().await.expect("a leader");
    let victim = if pause_leader {
        leader
    } else {
        fx.cluster.followers(leader)[0]
    };
    let load = start_load(load_spec(&fx, true));
    load.wait_ok(LIMIT / 3).await;
    fx.cluster.pause(victim).expect("SIGSTOP");
    println!(
        "[{what}] paused node {} at {} admissions",
        victim + 1,
        load.tally.ok()
    );
    let (tally, elapsed) = load.finish().await;
    fx.cluster.resume(victim).expect("SIGCONT");
    // Requests the paused node had read before it stopped may be admitted now; the
    // upstream counts them. Give them time to land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    check_budget(what, &fx, &tally, elapsed, Some(MIN_SHARE));
    let leader = fx
        .cluster
        .wait_leader()
        .await
        .expect("a leader after the resume");
    if let Ok(item) = usage_item(&fx.cluster, leader, true).await {
        println!("[{what}] ledger: {item}");
    }
}

/// (e) A follower is cut off from the others' Raft traffic (iptables) once a third of the
/// budget is used; requests go on to all nodes. The cut-off node admits at most what the
/// ledger granted it, and answers `503 quota_unavailable` once its balance is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_follower_admits_only_its_grants_then_fails_closed() {
    partitioned_mid_run(false).await;
}

/// (e') The same with the leader cut off: it cannot commit grants any more, the majority
/// elects a new leader and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_admits_only_its_grants_then_fails_closed() {
    partitioned_mid_run(true).await;
}

async fn partitioned_mid_run(cut_leader: bool) {
    let what = if cut_leader {
        "leader cut off"
    } else {
        "follower cut off"
    };
    let _serial = serial().await;
    let mut fx = fixture(
        ClusterBuilder::new(3).partitionable(),
        quota_policy("fixed", LIMIT),
    )
    .await;
    let leader = fx.cluster.wait_leader().await.expect("a leader");
    let cut = if cut_leader {
        leader
    } else {
        fx.cluster.followers(leader)[0]
    };
    let load = start_load(load_spec(&fx, true));
    load.wait_ok(LIMIT / 3).await;
    match fx.cluster.partition(cut) {
        Ok(()) => {}
        Err(ChaosError::FaultUnavailable { reason, .. }) => {
            load.stop.store(true, Ordering::Relaxed);
            println!("SKIP [{what}]: {reason}");
            return;
        }
        Err(e) => panic!("partitioning node {}: {e}", cut + 1),
    }
    let cut_at = now_ms();
    let ok_cut_before = load.tally.nodes[cut].ok.load(Ordering::Relaxed);
    println!(
        "[{what}] cut off node {} at {} admissions ({ok_cut_before} by that node)",
        cut + 1,
        load.tally.ok()
    );
    let (tally, elapsed) = load.finish().await;
    // The ledger, read linearizably on a node of the majority while the cut lasts.
    let majority = fx.cluster.followers(cut)[0];
    let item = wait::until("a consistent usage read", Duration::from_secs(15), || {
        usage_item(&fx.cluster, majority, true)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    fx.cluster.heal().expect("heal the partition");
    check_budget(what, &fx, &tally, elapsed, None);

    let n = &tally.nodes[cut];
    let ok_cut = n.ok.load(Ordering::Relaxed);
    let first_503 = n.first_unavailable_ms.load(Ordering::Relaxed);
    assert!(
        first_503 != 0,
        "the cut-off node never answered 503 quota_unavailable: {}",
        tally.summary()
    );
    let after = first_503.saturating_sub(cut_at);
    println!(
        "[{what}] node {} admitted {ok_cut} in total ({} after the cut); first 503 \
         quota_unavailable {after} ms after the cut",
        cut + 1,
        ok_cut - ok_cut_before
    );
    assert!(
        after <= 5_000,
        "the cut-off node took {after} ms to fail closed"
    );

    let granted = granted_by_node(&item);
    let granted_cut = granted.get(&fx.cluster.node_id(cut)).copied().unwrap_or(0);
    println!("[{what}] ledger: {item}");
    assert!(
        ok_cut <= granted_cut,
        "the cut-off node admitted {ok_cut} but was granted {granted_cut}: {item}"
    );
    assert!(
        item["granted"].as_u64().is_some_and(|g| g <= LIMIT),
        "granted within the limit: {item}"
    );
}

/// (g) Buckets left idle for more than 3 s hand their units back to the ledger (so other
/// nodes may use them); when traffic comes back they ask again and are admitted — without
/// `503 quota_unavailable` (a leader is there) and without a storm of Raft writes. Many
/// keys (one bucket each) on one node, as a real per-key quota sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_buckets_hand_back_and_resumed_traffic_is_admitted() {
    const BIG: u64 = 1_000_000;
    const KEYS: usize = 50;
    const BURST: u64 = 1_000;
    let _serial = serial().await;
    let fx = fixture(ClusterBuilder::new(3), quota_policy("fixed", BIG)).await;
    let mut keys = vec![fx.key.clone()];
    keys.extend(more_keys(&fx, KEYS).await);
    let node = 0;
    // One CPU for the node under load, as bench/quota.sh pins it: the sync loop and the
    // calls it wakes then take turns, which is where a grant can be handed back before
    // the waiting calls take it.
    match fx.cluster.pin_cpus(node, "0") {
        Ok(()) => {}
        Err(ChaosError::FaultUnavailable { reason, .. }) => println!("[idle] not pinned: {reason}"),
        Err(e) => panic!("pinning node 1: {e}"),
    }
    let spec = || LoadSpec {
        bases: vec![fx.bases[node].clone()],
        keys: keys.clone(),
        demand: BURST,
        ..load_spec(&fx, false)
    };
    let (first, _) = start_load(spec()).finish().await;
    let used = first.ok();
    assert!(
        used >= BURST && first.problem_count.load(Ordering::Relaxed) == 0,
        "first burst: {}",
        first.summary()
    );

    // Idle: after 3 s the node hands back what it holds; the ledger then shows node 1
    // granted exactly what it used, key by key.
    let id = fx.cluster.node_id(node).to_string();
    wait::until(
        "node 1's unused units to be handed back",
        Duration::from_secs(10),
        || async {
            let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?policy=q1").await;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            let granted: u64 = items
                .iter()
                .filter_map(|it| it["granted_by_node"][&id].as_u64())
                .sum();
            if items.len() == KEYS && granted == used {
                Ok(())
            } else {
                Err(format!(
                    "{} counters, {granted} granted to node 1 for {used} used",
                    items.len()
                ))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Units handed back while the burst runs = units granted to node 1 (its metric)
    // minus what the ledger still counts as granted to it afterwards. Every bucket is in
    // use throughout the burst (each key comes round every ~50 requests), so none is
    // idle and nothing should go back.
    let node_granted = |item_list: &Value| -> u64 {
        item_list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|it| it["granted_by_node"][&id].as_u64())
            .sum()
    };
    let writes = |text: &str| metric(text, "raftgate_quota_sync_writes_total", &[]);
    let grants = |text: &str| metric(text, "raftgate_quota_granted_units_total", &[]) as u64;
    let text = metrics_of(&fx.cluster, node).await;
    let (w0, g0) = (writes(&text), grants(&text));
    let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?policy=q1&consistent=true").await;
    let l0 = node_granted(&v);
    let (second, elapsed) = start_load(spec()).finish().await;
    // Let in-flight syncs land; idle hand-backs only start 3 s after the last use.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = metrics_of(&fx.cluster, node).await;
    let (w1, g1) = (writes(&text), grants(&text));
    let (_, v) = admin_get(&fx.cluster, 1, "/admin/v1/usage?policy=q1&consistent=true").await;
    let l1 = node_granted(&v);
    let handed_back = (g1 - g0).saturating_sub(l1.saturating_sub(l0));
    println!(
        "[idle] first burst {used}; resumed burst: {} in {:.2}s, {} quota Raft writes by \
         node 1 ({:.0}/s); units granted to node 1 {} (ledger: +{}), so {handed_back} \
         handed back during the burst (first asks alone: ~{}); {}",
        second.ok(),
        elapsed.as_secs_f64(),
        w1 - w0,
        (w1 - w0) / elapsed.as_secs_f64(),
        g1 - g0,
        l1.saturating_sub(l0),
        KEYS as u64 * (BIG / 96),
        second.summary()
    );
    let problems = second.problems.lock().expect("problems lock").clone();
    assert!(
        problems.is_empty(),
        "resumed traffic after an idle hand-back: {} violations, first ones: {problems:#?}",
        second.problem_count.load(Ordering::Relaxed)
    );
    assert_eq!(
        second.ok(),
        second.answered.load(Ordering::Relaxed),
        "resumed burst: every answer a 2xx: {}",
        second.summary()
    );
    assert_eq!(
        handed_back,
        0,
        "buckets in use handed back {handed_back} units during the resumed burst \
         (granted {} to node 1, ledger +{}), in {} Raft writes",
        g1 - g0,
        l1.saturating_sub(l0),
        w1 - w0
    );
}
