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
use super::watch::{LeaderWatch, Sample};
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

/// A stretch of run time in microseconds; `to_us` is `u64::MAX` while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub from_us: u64,
    pub to_us: u64,
}

impl Span {
    fn open(from_us: u64) -> Span {
        Span {
            from_us,
            to_us: u64::MAX,
        }
    }

    /// Whether the span meets `[a, b]`, its end stretched by `grace`.
    pub fn meets(&self, a: u64, b: u64, grace: u64) -> bool {
        self.from_us <= b && a <= self.to_us.saturating_add(grace)
    }
}

/// What a fault did and observed. Times are microseconds on the run's clock.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trace {
    pub description: String,
    pub start_us: u64,
    /// When the cluster was whole again (restarted, resumed, healed, rejoined).
    pub healed_us: u64,
    /// When each node could not serve: from kill, pause or removal until it answered
    /// `/readyz` again (never, for a removed node).
    pub down: Vec<(usize, Span)>,
    /// Links cut between two nodes, and when.
    pub cuts: Vec<(usize, usize, Span)>,
    /// Voter count from a time on: starts with the cluster's size.
    pub voters: Vec<(u64, usize)>,
    /// Time to elect a new leader, when the fault took the leader away.
    pub election: Option<Duration>,
    /// Nodes that are no longer members at the end (removed), excluded from final checks.
    pub removed: Vec<usize>,
    /// Node index → wall-clock offset (seconds) it ran with at some point.
    pub clock_offsets: Vec<(usize, i64)>,
    /// Who led, sampled through the whole scenario by the leader watch.
    #[serde(skip)]
    pub leaders: Vec<Sample>,
}

impl Trace {
    fn new(description: String, start_us: u64, nodes: usize) -> Trace {
        Trace {
            description,
            start_us,
            healed_us: start_us,
            voters: vec![(0, nodes)],
            ..Trace::default()
        }
    }

    fn down_from(&mut self, i: usize, now_us: u64) {
        self.down.push((i, Span::open(now_us)));
    }

    /// Closes node `i`'s open down span.
    fn up_at(&mut self, i: usize, now_us: u64) {
        for (n, span) in self.down.iter_mut().rev() {
            if *n == i && span.to_us == u64::MAX {
                span.to_us = now_us;
                break;
            }
        }
    }

    fn cut_from(&mut self, a: usize, b: usize, now_us: u64) {
        self.cuts.push((a, b, Span::open(now_us)));
    }

    fn heal_at(&mut self, now_us: u64) {
        for (_, _, span) in self.cuts.iter_mut().filter(|c| c.2.to_us == u64::MAX) {
            span.to_us = now_us;
        }
    }

    /// Whether node `i` was down at any moment of `[a, b]`.
    pub fn is_down(&self, i: usize, a: u64, b: u64) -> bool {
        self.down.iter().any(|(n, s)| *n == i && s.meets(a, b, 0))
    }

    /// Whether the link between `i` and `j` was cut at any moment of `[a, b]`, or healed
    /// less than `grace` before `a`.
    pub fn is_cut(&self, i: usize, j: usize, a: u64, b: u64, grace: u64) -> bool {
        self.cuts
            .iter()
            .any(|(x, y, s)| ((*x, *y) == (i, j) || (*x, *y) == (j, i)) && s.meets(a, b, grace))
    }

    /// The number of voters at time `t`.
    pub fn voters_at(&self, t: u64) -> usize {
        self.voters
            .iter()
            .take_while(|(from, _)| *from <= t)
            .last()
            .map_or(0, |(_, n)| *n)
    }
}

/// Injects `fault`, holds it for `hold`, and undoes it; the load runs meanwhile. Nodes
/// added or removed are reported to `watch`.
pub async fn inject<B: Backend>(
    fault: Fault,
    b: &mut B,
    history: &History,
    watch: &LeaderWatch,
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
    let now = || history.now_us();
    match fault {
        Fault::KillLeader => {
            t.description = format!("kill -9 leader {}, restart after {hold:?}", id(leader));
            t.down_from(leader, now());
            b.kill(leader).await?;
            t.election = Some(
                m::wait_new_leader(b, leader, &followers, start, CLUSTER_TIMEOUT)
                    .await?
                    .1,
            );
            tokio::time::sleep(hold).await;
            restart(b, &mut t, history, leader).await?;
        }
        Fault::KillFollower => {
            t.description = format!("kill -9 follower {}, restart after {hold:?}", id(follower));
            t.down_from(follower, now());
            b.kill(follower).await?;
            tokio::time::sleep(hold).await;
            restart(b, &mut t, history, follower).await?;
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
                t.down_from(v, now());
                b.kill(v).await?;
            }
            tokio::time::sleep(hold).await;
            let restarted = Instant::now();
            for &v in &victims {
                b.start(v).await?;
            }
            m::wait_leader(b, CLUSTER_TIMEOUT).await?;
            t.election = Some(restarted.elapsed());
            for &v in &victims {
                m::wait_ready(b, v, CLUSTER_TIMEOUT).await?;
                t.up_at(v, now());
            }
        }
        Fault::PauseLeader => {
            t.description = format!("SIGSTOP leader {} for {hold:?}, then SIGCONT", id(leader));
            t.down_from(leader, now());
            b.pause(leader).await?;
            t.election = Some(
                m::wait_new_leader(b, leader, &followers, start, CLUSTER_TIMEOUT)
                    .await?
                    .1,
            );
            tokio::time::sleep(hold).await;
            b.resume(leader).await?;
            m::wait_ready(b, leader, CLUSTER_TIMEOUT).await?;
            t.up_at(leader, now());
        }
        Fault::PartitionLeaderMinority => {
            t.description = format!(
                "leader {} cut off from both followers for {hold:?}",
                id(leader)
            );
            isolate(b, &mut t, history, leader).await?;
            t.election = Some(
                m::wait_new_leader(b, leader, &followers, start, CLUSTER_TIMEOUT)
                    .await?
                    .1,
            );
            tokio::time::sleep(hold).await;
            heal(b, &mut t, history).await?;
        }
        Fault::PartitionLeaderMajority => {
            t.description = format!(
                "follower {} cut off (leader {} keeps its majority) for {hold:?}",
                id(follower),
                id(leader)
            );
            isolate(b, &mut t, history, follower).await?;
            tokio::time::sleep(hold).await;
            heal(b, &mut t, history).await?;
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
            t.cut_from(leader, follower, now());
            b.cut(leader, follower).await?;
            tokio::time::sleep(hold).await;
            heal(b, &mut t, history).await?;
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
            isolate(b, &mut t, history, victim).await?;
            if victim == leader {
                t.election = Some(
                    m::wait_new_leader(b, leader, &followers, start, CLUSTER_TIMEOUT)
                        .await?
                        .1,
                );
            }
            tokio::time::sleep(hold).await;
            heal(b, &mut t, history).await?;
        }
        Fault::RestartKeepData => {
            let victim = rng.random_range(0..n);
            t.description = format!(
                "kill -9 node {} and start it again at once, data kept",
                id(victim)
            );
            t.down_from(victim, now());
            b.kill(victim).await?;
            restart(b, &mut t, history, victim).await?;
            tokio::time::sleep(hold).await;
        }
        Fault::WipeRejoin => {
            t.description = format!(
                "follower {}: kill -9, wipe its data dir, remove it, start it empty and join again",
                id(follower)
            );
            t.down_from(follower, now());
            b.kill(follower).await?;
            b.wipe(follower).await?;
            b.client(leader)?.remove_member(id(follower)).await?;
            watch.remove(follower);
            t.voters.push((now(), n - 1));
            m::wait_voters(b, n - 1, CLUSTER_TIMEOUT).await?;
            tokio::time::sleep(hold / 2).await;
            b.start(follower).await?;
            let leader_now = m::wait_leader(b, CLUSTER_TIMEOUT).await?;
            m::join(b, follower, leader_now).await?;
            m::wait_voters(b, n, CLUSTER_TIMEOUT).await?;
            t.voters.push((now(), n));
            watch.add(follower, id(follower), b.admin_url(follower)?);
            m::wait_ready(b, follower, CLUSTER_TIMEOUT).await?;
            t.up_at(follower, now());
        }
        Fault::RollingRestart => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(rng);
            t.description = format!(
                "rolling restart (kill -9, start, wait for catch-up) in order {:?}",
                order.iter().map(|&i| id(i)).collect::<Vec<_>>()
            );
            for i in order {
                t.down_from(i, now());
                b.kill(i).await?;
                restart(b, &mut t, history, i).await?;
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
            // The new node serves nothing until it has joined and caught up.
            t.down_from(added, now());
            m::join(b, added, leader).await?;
            m::wait_voters(b, n + 1, CLUSTER_TIMEOUT).await?;
            t.voters.push((now(), n + 1));
            watch.add(added, b.node_id(added), b.admin_url(added)?);
            m::wait_ready(b, added, CLUSTER_TIMEOUT).await?;
            t.up_at(added, now());
            tokio::time::sleep(hold / 2).await;
            let via = if removed == leader { follower } else { leader };
            t.down_from(removed, now());
            b.client(via)?.remove_member(id(removed)).await?;
            watch.remove(removed);
            t.voters.push((now(), n));
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

/// Starts node `i` (killed before) and closes its down span once it is ready.
async fn restart<B: Backend>(b: &mut B, t: &mut Trace, h: &History, i: usize) -> Result<()> {
    b.start(i).await?;
    m::wait_ready(b, i, CLUSTER_TIMEOUT).await?;
    t.up_at(i, h.now_us());
    Ok(())
}

async fn heal<B: Backend>(b: &mut B, t: &mut Trace, h: &History) -> Result<()> {
    b.heal().await?;
    t.heal_at(h.now_us());
    Ok(())
}

/// Cuts node `i` from every other node.
async fn isolate<B: Backend>(b: &mut B, t: &mut Trace, h: &History, i: usize) -> Result<()> {
    for j in (0..b.len()).filter(|&j| j != i) {
        t.cut_from(i, j, h.now_us());
        b.cut(i, j).await?;
    }
    Ok(())
}
