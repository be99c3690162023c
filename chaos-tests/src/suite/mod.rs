//! The chaos suite that operators run against a cluster before going live, and CI on
//! every change (binary `raftgate-chaos`): for each fault scenario, a cluster under
//! mixed load (REST, LLM, admin writes, register reads and writes) takes the fault, is
//! healed, and the checkers judge the recorded history — no lost writes, linearizable
//! admin operations, quotas never over-admitted, data-plane availability, convergence.
//!
//! Rooms: [`backend`] (who runs the nodes: processes, containers, an operator's
//! machines — [`external`]), [`membership`] (forming and watching the cluster through
//! the admin API), [`setup`] (the configuration under test), [`load`] and [`history`]
//! (clients and their record), [`nemesis`] (the faults), [`watch`] (who led, sampled
//! throughout), [`check`] and [`linear`] (the checkers), [`scenario`] (one scenario end
//! to end), [`report`] (table, JSON, Markdown).

use std::future::Future;

pub mod backend;
pub mod check;
pub mod external;
pub mod history;
pub mod linear;
pub mod load;
pub mod membership;
pub mod nemesis;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod watch;

use backend::Backend;
use nemesis::Fault;
use report::{verdict_str, ScenarioReport};
use scenario::Settings;

/// Runs each fault on a backend `make` provides (a fresh cluster per scenario for the
/// backends that start their own), printing a line per scenario as it ends.
pub async fn run_all<B, F, Fut>(
    faults: &[Fault],
    settings: &Settings,
    mut make: F,
) -> Vec<ScenarioReport>
where
    B: Backend,
    F: FnMut() -> Fut,
    Fut: Future<Output = crate::error::Result<B>>,
{
    let mut reports = Vec::new();
    for &fault in faults {
        let seed = scenario::scenario_seed(settings.seed, fault);
        eprintln!("chaos: scenario {} (seed {seed}) ...", fault.name());
        let report = match make().await {
            Ok(mut b) => scenario::run(fault, &mut b, settings).await,
            Err(e) => {
                let mut r = ScenarioReport::skipped(
                    fault.name(),
                    seed,
                    format!("starting the cluster: {e}"),
                );
                r.verdict = check::Verdict::Fail;
                r
            }
        };
        eprintln!(
            "chaos: scenario {} {} in {:.1} s: {}",
            fault.name(),
            verdict_str(report.verdict),
            report.duration_s,
            report
                .checks
                .iter()
                .map(|c| format!("{} {}", c.name, verdict_str(c.verdict)))
                .chain(
                    report
                        .aborted
                        .iter()
                        .map(|a| format!("aborted: {}", a.lines().next().unwrap_or("")))
                )
                .collect::<Vec<_>>()
                .join(", ")
        );
        reports.push(report);
    }
    reports
}
