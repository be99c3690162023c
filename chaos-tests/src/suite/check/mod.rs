//! The checkers. Each reads the run's [`History`](super::history::History) (and, for
//! lost writes, the nodes' final state) and returns a [`Check`]: PASS, FAIL or SKIP, with
//! the evidence a human needs to believe the verdict.

use serde::Serialize;

pub mod availability;
pub mod lost;
pub mod quota;
pub mod registers;

/// A checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    /// Could not be decided (nothing to check, or the checker gave up); never a pass.
    Skip,
}

/// One checker's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    /// One line for the table.
    pub summary: String,
    /// Details: counts, and for a failure the operations that prove it.
    pub evidence: Vec<String>,
}

impl Check {
    pub fn new(name: &'static str, verdict: Verdict, summary: String) -> Check {
        Check {
            name,
            verdict,
            summary,
            evidence: Vec::new(),
        }
    }

    pub fn with_evidence(mut self, evidence: Vec<String>) -> Check {
        self.evidence = evidence;
        self
    }
}

/// `us` as seconds with milliseconds, for evidence lines.
pub fn secs(us: u64) -> String {
    format!("{:.3}s", us as f64 / 1e6)
}
