//! One scenario, start to end: the suite's upstream and mock LLM server, the cluster
//! formed (unless the operator's already is), the configuration, the load, the fault,
//! recovery, and every checker over the history.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::backend::Backend;
use super::check::{availability, lost, quota, registers, Check, Verdict};
use super::history::{History, Op, OpKind};
use super::load::{answered, Load, LoadShape, Targets};
use super::membership::{self as m, CLUSTER_TIMEOUT};
use super::nemesis::{self, Fault, Trace};
use super::report::ScenarioReport;
use super::setup;
use super::watch::LeaderWatch;
use crate::error::{ChaosError, Result};
use crate::llm_mock::{Flavor, MockOptions, MockProvider};
use crate::upstream::{TestUpstream, UpstreamOptions};

/// How long each phase lasts, and the load.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The run's seed; each scenario derives its own from it and its name.
    pub seed: u64,
    /// Load before the fault.
    pub warmup: Duration,
    /// How long a fault is held.
    pub hold: Duration,
    /// Load after the fault is undone.
    pub cooldown: Duration,
    pub shape: LoadShape,
    /// The cluster is already formed (external backend): skip init and join.
    pub preformed: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            seed: 1,
            warmup: Duration::from_secs(4),
            hold: Duration::from_secs(8),
            cooldown: Duration::from_secs(4),
            shape: LoadShape::default(),
            preformed: false,
        }
    }
}

/// The scenario's own seed: the run's seed mixed with the fault's name (FNV-1a), so that
/// adding or dropping scenarios does not change the others' schedules.
pub fn scenario_seed(seed: u64, fault: Fault) -> u64 {
    fault
        .name()
        .bytes()
        .fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

/// Runs `fault` against `b` (freshly started, not yet formed unless `preformed`).
pub async fn run<B: Backend>(fault: Fault, b: &mut B, settings: &Settings) -> ScenarioReport {
    let seed = scenario_seed(settings.seed, fault);
    let caps = b.capabilities();
    if let Some(missing) = fault.needs().into_iter().find(|c| !caps.contains(c)) {
        return ScenarioReport::skipped(
            fault.name(),
            seed,
            format!("the {} backend cannot inject {missing:?}", b.name()),
        );
    }
    let started = Instant::now();
    let mut report = ScenarioReport::skipped(fault.name(), seed, String::new());
    report.aborted = None;
    match run_inner(fault, b, settings, seed, &mut report).await {
        Ok(()) => {}
        Err(e) => {
            let mut why = e.to_string();
            for i in 0..b.len() {
                let tail = b.log_tail(i, 15);
                if !tail.is_empty() {
                    why.push_str(&format!("\n--- node {} log tail ---\n{tail}", b.node_id(i)));
                }
            }
            report.aborted = Some(why);
        }
    }
    report.duration_s = started.elapsed().as_secs_f64();
    report.decide();
    report
}

async fn run_inner<B: Backend>(
    fault: Fault,
    b: &mut B,
    settings: &Settings,
    seed: u64,
    report: &mut ScenarioReport,
) -> Result<()> {
    let host: IpAddr = b
        .harness_bind()
        .parse()
        .map_err(|e| ChaosError::Invariant(format!("harness address {}: {e}", b.harness_bind())))?;
    let upstream =
        TestUpstream::start(UpstreamOptions::named("chaos").addr(SocketAddr::new(host, 0)))
            .await
            .map_err(|e| ChaosError::Invariant(format!("starting the suite's upstream: {e:#}")))?;
    let mut mock_opts = MockOptions::new(Flavor::OpenAi)
        .name("chaos-llm")
        .api_key(setup::LLM_API_KEY);
    mock_opts.addr = SocketAddr::new(host, 0);
    let mock = MockProvider::start(mock_opts)
        .await
        .map_err(|e| ChaosError::Invariant(format!("starting the mock LLM server: {e:#}")))?;
    let advertised = b.harness_host();
    let upstream_addr = format!("{advertised}:{}", upstream.addr().port());
    let llm_url = format!("http://{advertised}:{}/v1", mock.addr().port());

    if !settings.preformed {
        m::form(b).await?;
    }
    let leader = m::wait_leader(b, CLUSTER_TIMEOUT).await?;
    if settings.preformed {
        setup::cleanup(&b.client(leader)?).await?;
    }
    let setup = setup::apply(&b.client(leader)?, &upstream_addr, &llm_url).await?;
    let all: Vec<usize> = (0..b.len()).collect();
    let (applied, _) = m::progress(b).await;
    m::wait_converged(b, &all, applied, None, CLUSTER_TIMEOUT).await?;

    let history = History::new();
    let targets = Targets {
        data_urls: all.iter().map(|&i| b.data_url(i)).collect::<Result<_>>()?,
        admin_urls: all.iter().map(|&i| b.admin_url(i)).collect::<Result<_>>()?,
        token: b.token().unwrap_or_default(),
    };
    let watched = all
        .iter()
        .map(|&i| Ok((i, b.node_id(i), b.admin_url(i)?)))
        .collect::<Result<Vec<_>>>()?;
    let watch = LeaderWatch::start(&history, watched);
    let load = Load::start(&history, targets, &setup, &settings.shape, seed);
    tokio::time::sleep(settings.warmup).await;

    let mut rng = StdRng::seed_from_u64(seed);
    let injected = nemesis::inject(fault, b, &history, &watch, &mut rng, settings.hold).await;
    let mut trace = match injected {
        Ok(t) => t,
        Err(e) => {
            load.stop().await;
            // Undo what can be undone so the next scenario (or the operator) gets a cluster.
            let _ = b.heal().await;
            for i in 0..b.len() {
                if b.is_paused(i) {
                    let _ = b.resume(i).await;
                }
            }
            return Err(e);
        }
    };
    report.fault = trace.description.clone();
    report.election_ms = trace.election.map(|d| d.as_millis() as u64);

    let members: Vec<usize> = (0..b.len())
        .filter(|i| !trace.removed.contains(i))
        .collect();
    let (applied, revision) = m::progress(b).await;
    let recovery = m::wait_converged(b, &members, applied, Some(revision), CLUSTER_TIMEOUT).await;
    tokio::time::sleep(settings.cooldown).await;
    load.stop().await;
    trace.leaders = watch.stop().await;
    let ops = history.snapshot();
    let (applied, _) = m::progress(b).await;
    let settled = m::wait_converged(b, &members, applied, None, CLUSTER_TIMEOUT).await;

    report.ops = ops.len();
    report.history_start_unix_ms = history.wall_ms(0);
    (report.errors, report.error_kinds) = count_errors(&ops, &trace);
    report.recovery_ms = recovery.as_ref().ok().map(|d| d.as_millis() as u64);
    let clients: Vec<_> = members
        .iter()
        .filter_map(|&i| b.client(i).ok().map(|c| (i, c)))
        .collect();
    let (quota_check, worst) = quota::check(&ops, &history, &trace, &setup::limits());
    let (avail_check, avail) = availability::check(&ops, &trace);
    report.over_admission = Some(worst);
    report.availability = Some(avail);
    report.checks = vec![
        lost::check(&clients, &ops).await,
        registers::check(&ops, &setup.registers),
        quota_check,
        avail_check,
        convergence(&trace, recovery, settled),
    ];
    if settings.preformed {
        let leader = m::wait_leader(b, CLUSTER_TIMEOUT).await?;
        setup::cleanup(&b.client(leader)?).await?;
    }
    drop(upstream);
    drop(mock);
    Ok(())
}

/// Data-plane calls to live nodes that were not answered successfully, and admin
/// operations that got no answer — counted, and broken down by kind and outcome.
fn count_errors(ops: &[Op], trace: &Trace) -> (usize, BTreeMap<String, usize>) {
    let mut by_kind = BTreeMap::new();
    let errors = ops.iter().filter(|op| {
        let failed = if op.kind.is_data_plane() {
            !trace.is_down(op.node, op.invoke_us, op.complete_us) && !answered(&op.outcome)
        } else {
            op.outcome.status().is_none()
        };
        if failed {
            let kind = match &op.kind {
                OpKind::Rest { route } => route.clone(),
                OpKind::Llm { .. } => "llm".into(),
                OpKind::Create { collection, .. } => format!("create {collection}"),
                OpKind::Delete { collection, .. } => format!("delete {collection}"),
                OpKind::QuotaChange { .. } => "quota change".into(),
                OpKind::RegWrite { .. } => "register write".into(),
                OpKind::RegRead { .. } => "register read".into(),
            };
            *by_kind
                .entry(format!("{kind}: {}", op.outcome.short()))
                .or_insert(0) += 1;
        }
        failed
    });
    (errors.count(), by_kind)
}

/// Convergence: every member at the cluster's applied index with one config revision
/// after the heal, and a new leader in bounded time when the fault took the old one.
fn convergence(trace: &Trace, recovery: Result<Duration>, settled: Result<Duration>) -> Check {
    let mut evidence = Vec::new();
    if let Some(e) = trace.election {
        evidence.push(format!(
            "new leader elected {} ms after the fault",
            e.as_millis()
        ));
    }
    let verdict = match (&recovery, &settled) {
        (Ok(r), Ok(_)) => {
            evidence.push(format!(
                "all members converged {} ms after the heal",
                r.as_millis()
            ));
            Verdict::Pass
        }
        (Err(e), _) | (_, Err(e)) => {
            evidence.push(format!("did not converge: {e}"));
            Verdict::Fail
        }
    };
    let summary = match &recovery {
        Ok(r) => format!("recovered in {} ms", r.as_millis()),
        Err(_) => "not recovered".into(),
    };
    Check::new("convergence", verdict, summary).with_evidence(evidence)
}
