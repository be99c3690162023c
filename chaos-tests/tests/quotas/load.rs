//! Paced load from many client tasks over every node, its tallies and the budget checks.

use super::*;

/// Answers of one node, as the clients saw them.
#[derive(Default)]
pub(crate) struct NodeTally {
    pub(crate) ok: AtomicU64,
    pub(crate) limited: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    /// No HTTP answer: connection refused or reset (killed node), timeout (paused node).
    pub(crate) no_answer: AtomicU64,
    pub(crate) other: AtomicU64,
    /// Unix ms of the first `503 quota_unavailable` (0: none yet).
    pub(crate) first_unavailable_ms: AtomicU64,
}

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) nodes: Vec<NodeTally>,
    /// HTTP answers of any status.
    pub(crate) answered: AtomicU64,
    /// 2xx per wall-clock second in which the request was sent.
    pub(crate) ok_by_second: StdMutex<BTreeMap<u64, u64>>,
    /// Contract violations seen in answers (at most a few kept).
    pub(crate) problems: StdMutex<Vec<String>>,
    pub(crate) problem_count: AtomicU64,
}

impl Tally {
    pub(crate) fn sum(&self, f: impl Fn(&NodeTally) -> &AtomicU64) -> u64 {
        self.nodes
            .iter()
            .map(|n| f(n).load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn ok(&self) -> u64 {
        self.sum(|n| &n.ok)
    }

    pub(crate) fn problem(&self, p: String) {
        self.problem_count.fetch_add(1, Ordering::Relaxed);
        let mut v = self.problems.lock().expect("problems lock");
        if v.len() < 10 {
            v.push(p);
        }
    }

    pub(crate) fn summary(&self) -> String {
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
pub(crate) struct Pacing {
    pub(crate) per_second: u64,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

pub(crate) const FROM_MS: u64 = 150;
pub(crate) const UNTIL_MS: u64 = 850;

#[derive(Clone)]
pub(crate) struct LoadSpec {
    pub(crate) bases: Vec<String>,
    /// Plaintext API keys, used in turn.
    pub(crate) keys: Vec<String>,
    pub(crate) limit: u64,
    /// Stop after this many answers.
    pub(crate) demand: u64,
    pub(crate) deadline: Instant,
    /// `503 quota_unavailable` is expected (fault runs).
    pub(crate) allow_unavailable: bool,
    /// A `fixed` window: no `RateLimit-Reset`.
    pub(crate) fixed: bool,
    pub(crate) pacing: Option<Pacing>,
}

/// A load run in progress: tasks on the runtime, counters shared with the test.
pub(crate) struct Load {
    pub(crate) tally: Arc<Tally>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) tasks: JoinSet<()>,
    pub(crate) started: Instant,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

pub(crate) fn start_load(spec: LoadSpec) -> Load {
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
    pub(crate) async fn wait_ok(&self, n: u64) {
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
    pub(crate) async fn finish(mut self) -> (Arc<Tally>, Duration) {
        while let Some(r) = self.tasks.join_next().await {
            r.expect("a load task panicked");
        }
        self.stop.store(true, Ordering::Relaxed);
        (self.tally, self.started.elapsed())
    }
}

pub(crate) fn load_spec(fx: &Fixture, allow_unavailable: bool) -> LoadSpec {
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
pub(crate) fn check_budget(
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
