//! The suite's report: one row per scenario (fault, ops, errors, over-admission,
//! availability, election and recovery time, verdict) printed as a table, and the whole
//! run — checks and evidence included — written as JSON and Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::check::{Check, Verdict};
use crate::error::{ChaosError, Result};

/// One scenario's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    /// What the fault did, with node ids.
    pub fault: String,
    pub seed: u64,
    pub ops: usize,
    /// Data-plane calls to live nodes without an answer or with a 5xx, plus admin
    /// operations without an answer.
    pub errors: usize,
    /// The errors by operation kind and outcome (`llm: 503 quota_unavailable` → count).
    pub error_kinds: BTreeMap<String, usize>,
    /// The worst window's admitted/limit (≤ 1.0 is within the limit).
    pub over_admission: Option<f64>,
    /// The lowest availability among the judged traffic classes, in percent.
    pub availability: Option<f64>,
    pub election_ms: Option<u64>,
    pub recovery_ms: Option<u64>,
    pub duration_s: f64,
    /// Wall-clock milliseconds since the epoch at which the history's clock reads 0 (to
    /// match the evidence's run-relative times with node logs).
    pub history_start_unix_ms: u64,
    pub checks: Vec<Check>,
    /// Why the scenario could not run to the end (then it fails), or why it was skipped.
    pub aborted: Option<String>,
    pub verdict: Verdict,
}

impl ScenarioReport {
    /// A scenario the backend cannot run.
    pub fn skipped(scenario: &str, seed: u64, why: String) -> ScenarioReport {
        ScenarioReport {
            scenario: scenario.into(),
            fault: String::new(),
            seed,
            ops: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
            over_admission: None,
            availability: None,
            election_ms: None,
            recovery_ms: None,
            duration_s: 0.0,
            history_start_unix_ms: 0,
            checks: Vec::new(),
            aborted: Some(why),
            verdict: Verdict::Skip,
        }
    }

    /// The scenario's row of the summary table, one cell per column.
    fn cells(&self) -> [String; 8] {
        let dash = || "-".to_string();
        [
            self.scenario.clone(),
            self.ops.to_string(),
            self.errors.to_string(),
            self.over_admission
                .map_or_else(dash, |r| format!("{:.0}%", r * 100.0)),
            self.availability.map_or_else(dash, |a| format!("{a:.2}%")),
            self.election_ms.map_or_else(dash, |ms| format!("{ms} ms")),
            self.recovery_ms.map_or_else(dash, |ms| format!("{ms} ms")),
            verdict_str(self.verdict).to_string(),
        ]
    }

    /// FAIL when any check failed or the run aborted; SKIP when nothing was decided.
    pub fn decide(&mut self) {
        let failed = self.checks.iter().any(|c| c.verdict == Verdict::Fail);
        self.verdict = if self.aborted.is_some() || failed {
            Verdict::Fail
        } else if self.checks.iter().any(|c| c.verdict == Verdict::Pass) {
            Verdict::Pass
        } else {
            Verdict::Skip
        };
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// UTC time the run started (RFC 3339).
    pub started: String,
    pub machine: String,
    pub backend: String,
    pub seed: u64,
    /// The command line that replays this run.
    pub replay: String,
    pub scenarios: Vec<ScenarioReport>,
}

impl SuiteReport {
    /// PASS only when no scenario failed.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|s| s.verdict != Verdict::Fail)
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<27} {:>6} {:>6} {:>9} {:>8} {:>9} {:>9} {:>7}",
            "scenario", "ops", "errors", "admitted", "avail", "election", "recovery", "verdict"
        );
        for s in &self.scenarios {
            let c = s.cells();
            let _ = writeln!(
                out,
                "{:<27} {:>6} {:>6} {:>9} {:>8} {:>9} {:>9} {:>7}",
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
            );
        }
        out
    }

    /// The report as Markdown: the table, then each scenario's fault and checks.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Chaos suite report\n");
        let _ = writeln!(
            md,
            "- started: {}\n- machine: {}\n- backend: {}\n- seed: {} (replay: `{}`)\n- result: **{}**\n",
            self.started,
            self.machine,
            self.backend,
            self.seed,
            self.replay,
            if self.passed() { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(
            md,
            "| scenario | ops | errors | max admitted / limit | availability | election | recovery | verdict |\n|---|---:|---:|---:|---:|---:|---:|---|"
        );
        for s in &self.scenarios {
            let _ = writeln!(md, "| {} |", s.cells().join(" | "));
        }
        for s in &self.scenarios {
            let _ = writeln!(md, "\n## {} — {}\n", s.scenario, verdict_str(s.verdict));
            if !s.fault.is_empty() {
                let _ = writeln!(
                    md,
                    "Fault: {} ({:.1} s, seed {}; times below are from {} ms since the epoch).\n",
                    s.fault, s.duration_s, s.seed, s.history_start_unix_ms
                );
            }
            if !s.error_kinds.is_empty() {
                let kinds: Vec<String> = s
                    .error_kinds
                    .iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect();
                let _ = writeln!(md, "Errors: {}.\n", kinds.join(", "));
            }
            if let Some(why) = &s.aborted {
                let _ = writeln!(md, "Not run to the end: {why}\n");
            }
            for c in &s.checks {
                let _ = writeln!(
                    md,
                    "- **{}** {}: {}",
                    verdict_str(c.verdict),
                    c.name,
                    c.summary
                );
                for e in &c.evidence {
                    let _ = writeln!(md, "  - {e}");
                }
            }
        }
        md
    }

    /// Writes `report.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ChaosError::io(format!("creating {}", dir.display()), e))?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| ChaosError::Invariant(format!("encoding the report: {e}")))?;
        for (name, body) in [("report.json", json), ("report.md", self.markdown())] {
            let path = dir.join(name);
            std::fs::write(&path, body)
                .map_err(|e| ChaosError::io(format!("writing {}", path.display()), e))?;
        }
        Ok(())
    }
}

pub fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Skip => "SKIP",
    }
}
