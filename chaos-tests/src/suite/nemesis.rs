//! Faults (nemeses): what each scenario does to the cluster, and what it observed while
//! doing it. Every choice a fault makes (which follower, which nodes, which order, how
//! far a clock jumps) comes from the scenario's seeded RNG, so a seed replays the same
//! schedule (the leader is whoever the cluster elected, which the seed cannot fix).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

use super::backend::{Backend, Capability};
use super::history::History;
use super::membership::{self as m, CLUSTER_TIMEOUT};
use crate::error::Result;

/// One fault scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    KillLeader,
    KillFollower,
    KillMajority,
    PauseLeader,
    /// The leader alone on one side of a partition.
    PartitionLeaderMinority,
    /// A follower alone on one side: the leader keeps its majority.
    PartitionLeaderMajority,
    /// The leader and one follower cannot talk; the third node talks to both.
    PartitionBridge,
    /// A node chosen by the seed cut off from all others.
    IsolateOne,
    /// kill -9 a node chosen by the seed and start it again at once, data kept.
    RestartKeepData,
    /// A follower killed, its data dir wiped, removed, started empty and joined again.
    WipeRejoin,
    /// Every node killed and restarted, one at a time, waiting for catch-up in between.
    RollingRestart,
    /// A fourth node added, then one of the original three removed, under load.
    MembershipChange,
    /// One node's wall clock stepped forward, then back.
    ClockJump,
}

/// Every fault, in the order the full set runs them.
pub const ALL: [Fault; 13] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::KillMajority,
    Fault::PauseLeader,
    Fault::PartitionLeaderMinority,
    Fault::PartitionLeaderMajority,
    Fault::PartitionBridge,
    Fault::IsolateOne,
    Fault::RestartKeepData,
    Fault::WipeRejoin,
    Fault::RollingRestart,
    Fault::MembershipChange,
    Fault::ClockJump,
];

/// The reduced set CI runs on the process backend.
pub const CI: [Fault; 5] = [
    Fault::KillLeader,
    Fault::PauseLeader,
    Fault::PartitionLeaderMinority,
    Fault::WipeRejoin,
    Fault::RollingRestart,
];

/// The reduced set CI runs on the Docker backend.
pub const CI_DOCKER: [Fault; 2] = [Fault::KillLeader, Fault::PartitionLeaderMinority];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillFollower => "kill-follower",
            Fault::KillMajority => "kill-majority",
            Fault::PauseLeader => "pause-leader",
            Fault::PartitionLeaderMinority => "partition-leader-minority",
            Fault::PartitionLeaderMajority => "partition-leader-majority",
            Fault::PartitionBridge => "partition-bridge",
            Fault::IsolateOne => "isolate-one",
            Fault::RestartKeepData => "restart-keep-data",
            Fault::WipeRejoin => "wipe-rejoin",
            Fault::RollingRestart => "rolling-restart",
            Fault::MembershipChange => "membership-change",
            Fault::ClockJump => "clock-jump",
        }
    }

    pub fn parse(name: &str) -> Option<Fault> {
        ALL.into_iter().find(|f| f.name() == name)
    }

    /// What the backend must be able to do for this fault.
    pub fn needs(self) -> Vec<Capability> {
        match self {
            Fault::PauseLeader => vec![Capability::Pause],
            Fault::PartitionLeaderMinority
            | Fault::PartitionLeaderMajority
            | Fault::PartitionBridge
            | Fault::IsolateOne => vec![Capability::Cut],
            Fault::WipeRejoin => vec![Capability::Kill, Capability::Wipe],
            Fault::MembershipChange => vec![Capability::AddNode],
            Fault::ClockJump => vec![Capability::ClockJump],
            _ => vec![Capability::Kill],
        }
    }
}

/// A node's part in a fault, for the availability checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Alive and able to reach a quorum the whole time.
    Majority,
    /// Alive but without a quorum for part of the run (partitioned off, or the survivor
    /// of a majority kill): it serves from its replica and its held quota leases.
    Minority,
    /// Killed, paused, wiped, restarted or removed during the run.
    Down,
}

/// What a fault did and observed. Times are microseconds on the run's clock.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub description: String,
    pub start_us: u64,
    /// When the cluster was whole again (restarted, resumed, healed, rejoined).
    pub healed_us: u64,
    /// Each node's part (index = node index; nodes added by the fault included).
    pub sides: Vec<Side>,
    /// Time to elect a new leader, when the fault took the leader away.
    pub election: Option<Duration>,
    /// Nodes that are no longer members at the end (removed), excluded from final checks.
    pub removed: Vec<usize>,
    /// Node index → wall-clock offset (seconds) it ran with at some point.
    pub clock_offsets: Vec<(usize, i64)>,
}

impl Trace {
    fn new(description: String, start_us: u64, nodes: usize) -> Trace {
        Trace {
            description,
            start_us,
            healed_us: start_us,
            sides: vec![Side::Majority; nodes],
            election: None,
            removed: Vec::new(),
            clock_offsets: Vec::new(),
        }
    }

    fn mark(&mut self, i: usize, side: Side) {
        if self.sides.len() <= i {
            self.sides.resize(i + 1, Side::Majority);
        }
        // Down outranks Minority outranks Majority.
        let rank = |s: Side| match s {
            Side::Majority => 0,
            Side::Minority => 1,
            Side::Down => 2,
        };
        if rank(side) > rank(self.sides[i]) {
            self.sides[i] = side;
        }
    }
}

/// Injects `fault`, holds it for `hold`, and undoes it; the load runs meanwhile.
pub async fn inject<B: Backend>(
    fault: Fault,
    b: &mut B,
    history: &History,
    rng: &mut StdRng,
    hold: Duration,
) -> Result<Trace> {
    let leader = m::wait_leader(b, CLUSTER_TIMEOUT).await?;
    let n = b.len();
    let followers: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
    let follower = followers[rng.random_range(0..followers.len())];
    let ids: Vec<u64> = (0..n).map(|i| b.node_id(i)).collect();
    let id = |i: usize| ids.get(i).copied().unwrap_or(0);
    let start = Instant::now();
    let mut t = Trace::new(String::new(), history.now_us(), n);
    match fault {
        Fault::KillLeader => {
            t.description = format!("kill -9 leader {}, restart after {hold:?}", id(leader));
            t.mark(leader, Side::Down);
            b.kill(leader).await?;
            t.election = Some(
                m::wait_new_leader(b, leader, &followers, start, CLUSTER_TIMEOUT)
                    .await?
                    .1,
            );
            tokio::time::sleep(hold).await;
            b.start(leader).await?;
        }
        Fault::KillFollower => {
            t.description = format!("kill -9 follower {}, restart after {hold:?}", id(follower));
            t.mark(follower, Side::Down);
            b.kill(follower).await?;
            tokio::time::sleep(hold).await;
            b.start(follower).await?;
        }
        Fault::KillMajority => {
            let survivor = followers[rng.random_range(0..followers.len())];
            let victims: Vec<usize> = (0..n).filter(|&i| i != survivor).collect();
            t.description = format!(
                "kill -9 nodes {:?} (leader {} among them), restart after {hold:?}",
                victims.iter().map(|&i| id(i)).collect::<Vec<_>>(),
                id(leader)
            );
            for &v in &victims {
                t.mark(v, Side::Down);
                b.kill(v).await?;
            }
            t.mark(survivor, Side::Minority);
            tokio::time::sleep(hold).await;
            let restarted = Instant::now();
            for &v in &victims {
                b.start(v).await?;
            }
            m::wait_leader(b, CLUSTER_TIMEOUT).await?;
            t.election = Some(restarted.elapsed());
        }
        Fault::PauseLeader => {
            t.description = format!("SIGSTOP leader {} for {hold:?}, then SIGCONT", id(leader));
            t.mark(leader, Side::Down);
            b.pause(leader).await?;
            t.election = Some(
                m::wait_new_leader(b, leader, &followers, start, CLUSTER_TIMEOUT)
                    .await?
                    .1,
            );
            tokio::time::sleep(hold).await;
            b.resume(leader).await?;
        }
        Fault::PartitionLeaderMinority => {
            t.description = format!(
                "leader {} cut off from both followers for {hold:?}",
                id(leader)
            );
            isolate(b, leader).await?;
            t.mark(leader, Side::Minority);
            t.election = Some(
                m::wait_new_leader(b, leader, &followers, start, CLUSTER_TIMEOUT)
                    .await?
                    .1,
            );
            tokio::time::sleep(hold).await;
            b.heal().await?;
        }
        Fault::PartitionLeaderMajority => {
            t.description = format!(
                "follower {} cut off (leader {} keeps its majority) for {hold:?}",
                id(follower),
                id(leader)
            );
            isolate(b, follower).await?;
            t.mark(follower, Side::Minority);
            tokio::time::sleep(hold).await;
            b.heal().await?;
        }
        Fault::PartitionBridge => {
            let bridge = followers
                .iter()
                .copied()
                .find(|&f| f != follower)
                .unwrap_or(follower);
            t.description = format!(
                "bridge: leader {} and follower {} cut from each other, node {} reaches both, for {hold:?}",
                id(leader),
                id(follower),
                id(bridge)
            );
            b.cut(leader, follower).await?;
            tokio::time::sleep(hold).await;
            b.heal().await?;
        }
        Fault::IsolateOne => {
            let victim = rng.random_range(0..n);
            let role = if victim == leader {
                "the leader"
            } else {
                "a follower"
            };
            t.description = format!(
                "node {} ({role}) cut off from all others for {hold:?}",
                id(victim)
            );
            isolate(b, victim).await?;
            t.mark(victim, Side::Minority);
            if victim == leader {
                t.election = Some(
                    m::wait_new_leader(b, leader, &followers, start, CLUSTER_TIMEOUT)
                        .await?
                        .1,
                );
            }
            tokio::time::sleep(hold).await;
            b.heal().await?;
        }
        Fault::RestartKeepData => {
            let victim = rng.random_range(0..n);
            t.description = format!(
                "kill -9 node {} and start it again at once, data kept",
                id(victim)
            );
            t.mark(victim, Side::Down);
            b.kill(victim).await?;
            b.start(victim).await?;
            tokio::time::sleep(hold).await;
        }
        Fault::WipeRejoin => {
            t.description = format!(
                "follower {}: kill -9, wipe its data dir, remove it, start it empty and join again",
                id(follower)
            );
            t.mark(follower, Side::Down);
            b.kill(follower).await?;
            b.wipe(follower).await?;
            b.client(leader)?.remove_member(id(follower)).await?;
            m::wait_voters(b, n - 1, CLUSTER_TIMEOUT).await?;
            tokio::time::sleep(hold / 2).await;
            b.start(follower).await?;
            let leader_now = m::wait_leader(b, CLUSTER_TIMEOUT).await?;
            m::join(b, follower, leader_now).await?;
            m::wait_voters(b, n, CLUSTER_TIMEOUT).await?;
        }
        Fault::RollingRestart => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(rng);
            t.description = format!(
                "rolling restart (kill -9, start, wait for catch-up) in order {:?}",
                order.iter().map(|&i| id(i)).collect::<Vec<_>>()
            );
            for i in order {
                t.mark(i, Side::Down);
                b.kill(i).await?;
                b.start(i).await?;
                m::wait_voters(b, n, CLUSTER_TIMEOUT).await?;
                let (applied, revision) = m::progress(b).await;
                m::wait_converged(b, &m::live(b), applied, Some(revision), CLUSTER_TIMEOUT).await?;
            }
        }
        Fault::MembershipChange => {
            let removed = rng.random_range(0..n);
            let added = b.add_node().await?;
            t.description = format!(
                "node {} added as a voter, then node {} removed (and stopped)",
                b.node_id(added),
                id(removed)
            );
            t.mark(added, Side::Down);
            m::join(b, added, leader).await?;
            m::wait_voters(b, n + 1, CLUSTER_TIMEOUT).await?;
            tokio::time::sleep(hold / 2).await;
            let via = if removed == leader { follower } else { leader };
            t.mark(removed, Side::Down);
            b.client(via)?.remove_member(id(removed)).await?;
            m::wait_voters(b, n, CLUSTER_TIMEOUT).await?;
            b.kill(removed).await?;
            t.removed.push(removed);
            tokio::time::sleep(hold / 2).await;
        }
        Fault::ClockJump => {
            let victim = rng.random_range(0..n);
            let secs: i64 = rng.random_range(20..=90);
            t.description = format!(
                "node {}'s wall clock stepped {secs:+} s for {hold:?}, then back",
                id(victim)
            );
            t.clock_offsets.push((victim, secs));
            b.jump_clock(victim, secs).await?;
            tokio::time::sleep(hold).await;
            b.jump_clock(victim, 0).await?;
        }
    }
    t.healed_us = history.now_us();
    Ok(t)
}

/// Cuts node `i` from every other node.
async fn isolate<B: Backend>(b: &mut B, i: usize) -> Result<()> {
    for j in (0..b.len()).filter(|&j| j != i) {
        b.cut(i, j).await?;
    }
    Ok(())
}
