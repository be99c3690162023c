//! The Docker backend end to end: three containers form a cluster through the admin API,
//! then each fault the backend offers (kill and restart, a cut, a pause) does what the
//! suite expects of it. Skipped (and passing) when `docker info` fails.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use raftgate_chaos::docker::{DockerCluster, DockerOptions};
use raftgate_chaos::suite::backend::Backend;
use raftgate_chaos::{wait, ClusterStatus, Read};
use serde_json::json;

/// Bound for elections, joins and catch-up.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// One status probe: a paused or cut-off node must not stall a wait.
const PROBE: Duration = Duration::from_secs(2);

fn docker_available() -> Result<(), String> {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

async fn status(c: &DockerCluster, i: usize) -> Result<ClusterStatus, String> {
    let client = c.client(i).map_err(|e| e.to_string())?;
    client
        .with_timeout(PROBE)
        .cluster_status()
        .await
        .map_err(|e| format!("node {}: {e}", i + 1))
}

/// The leader among `among`, named by one of them and confirmed by itself.
async fn leader_among(c: &DockerCluster, among: &[usize]) -> usize {
    let what = format!("a leader among node indexes {among:?}");
    wait::until(&what, CLUSTER_TIMEOUT, || async {
        let mut seen = Vec::new();
        for &i in among {
            let s = match status(c, i).await {
                Ok(s) => s,
                Err(e) => {
                    seen.push(e);
                    continue;
                }
            };
            let named = s.leader_id.and_then(|id| c.index_of(id));
            if let Some(l) = named.filter(|l| among.contains(l)) {
                if status(c, l)
                    .await
                    .is_ok_and(|ls| ls.leader_id == Some(c.node_id(l)))
                {
                    return Ok(l);
                }
            }
            seen.push(format!("node {}: {}", i + 1, s.summary()));
        }
        Err(seen.join(" | "))
    })
    .await
    .unwrap_or_else(|e| panic!("expected a leader among {among:?}: {e}"))
}

/// Waits until node `i`'s local replica has tenant `id`.
async fn wait_tenant(c: &DockerCluster, i: usize, id: &str) {
    let what = format!("node {} to have tenant {id} locally", i + 1);
    wait::until(&what, CLUSTER_TIMEOUT, || async {
        let client = c.client(i).map_err(|e| e.to_string())?.with_timeout(PROBE);
        match client.get("tenants", id, Read::Local).await {
            Ok(t) if t["id"] == id => Ok(()),
            Ok(t) => Err(format!("unexpected tenant {t}")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("expected {what}: {e}"));
}

async fn create_tenant(c: &DockerCluster, via: usize, id: &str) {
    c.client(via)
        .expect("client")
        .create("tenants", &json!({"id": id, "name": id.to_uppercase()}))
        .await
        .unwrap_or_else(|e| panic!("expected node {} to create tenant {id}: {e}", via + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_backend_faults() {
    if let Err(e) = docker_available() {
        eprintln!("SKIP docker_backend_faults: `docker info` failed: {e}");
        return;
    }
    let t0 = Instant::now();
    let mut c = DockerOptions::new(3)
        .start()
        .await
        .expect("expected 3 containers to start and answer /healthz");
    eprintln!(
        "3 containers up in {:.1?} on {} (gateway {})",
        t0.elapsed(),
        c.network(),
        c.harness_host()
    );
    assert_eq!(c.name(), "docker");
    assert_eq!(c.harness_host(), c.harness_bind());

    // Formation, through the admin API as the suite does it.
    let token = c
        .client(0)
        .expect("client")
        .init()
        .await
        .expect("expected init on node 0");
    c.set_token(&token.admin_token);
    let via = c.admin_url(0).expect("admin url");
    for i in 1..3 {
        let client = c.client(i).expect("client").with_timeout(CLUSTER_TIMEOUT);
        let what = format!("node {} to join via {via}", i + 1);
        // Retried while the answer is 5xx or missing, as an operator would; a 4xx is final.
        let outcome = wait::until(&what, CLUSTER_TIMEOUT, || async {
            match client.join(&via).await {
                Ok(_) => Ok(Ok(())),
                Err(e) if e.status().is_some_and(|s| s.is_client_error()) => Ok(Err(e.to_string())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| panic!("expected {what}: {e}"));
        outcome.unwrap_or_else(|e| panic!("expected {what}, got a refusal: {e}"));
    }
    wait::until("3 reachable voters", CLUSTER_TIMEOUT, || async {
        let l = leader_among(&c, &[0, 1, 2]).await;
        let s = status(&c, l).await?;
        let voters: Vec<_> = s.nodes.iter().filter(|n| n.voter).collect();
        if voters.len() == 3 && voters.iter().all(|n| n.reachable) {
            Ok(())
        } else {
            Err(s.summary())
        }
    })
    .await
    .expect("expected the leader to report 3 voters, all reachable");
    eprintln!("formed in {:.1?}", t0.elapsed());

    // A write reaches every replica.
    let leader = leader_among(&c, &[0, 1, 2]).await;
    create_tenant(&c, leader, "t1").await;
    for i in 0..3 {
        wait_tenant(&c, i, "t1").await;
    }

    // Kill the leader: the other two elect one; the old one catches up after a restart.
    c.kill(leader).await.expect("expected docker kill to work");
    assert!(!c.is_running(leader), "a killed node is not running");
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let second = leader_among(&c, &others).await;
    assert_ne!(second, leader, "expected a new leader, not the killed node");
    create_tenant(&c, second, "t2").await;
    c.start(leader)
        .await
        .expect("expected the killed node to restart");
    wait_tenant(&c, leader, "t2").await;
    eprintln!("kill/restart done at {:.1?}", t0.elapsed());

    // Cut the leader from both followers: the majority side elects another leader.
    let leader = leader_among(&c, &[0, 1, 2]).await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &f in &followers {
        c.cut(leader, f).await.expect("expected the cut to apply");
    }
    let majority = leader_among(&c, &followers).await;
    assert_ne!(
        majority, leader,
        "expected the majority side to elect a new leader"
    );
    create_tenant(&c, majority, "t3").await;
    c.heal().await.expect("expected heal to flush the cuts");
    wait_tenant(&c, leader, "t3").await;
    let what = "all 3 nodes to report the same applied index";
    wait::until(what, CLUSTER_TIMEOUT, || async {
        let mut applied = Vec::new();
        for i in 0..3 {
            let s = status(&c, i).await?;
            let own = s.nodes.iter().find(|n| n.id == c.node_id(i));
            applied.push(own.and_then(|n| n.applied_index));
        }
        match applied[0] {
            Some(a) if applied.iter().all(|x| *x == Some(a)) => Ok(()),
            _ => Err(format!("applied indexes {applied:?}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("expected {what}: {e}"));
    eprintln!("cut/heal done at {:.1?}", t0.elapsed());

    // Pause a follower: its admin API answers nothing until resumed.
    let leader = leader_among(&c, &[0, 1, 2]).await;
    let f = (0..3).find(|&i| i != leader).expect("a follower");
    c.pause(f).await.expect("expected docker pause to work");
    assert!(
        c.is_paused(f) && c.is_running(f),
        "a paused node is running and paused"
    );
    let quick = c
        .client(f)
        .expect("client")
        .with_timeout(Duration::from_millis(500));
    let answer = quick.healthz().await;
    assert!(
        answer.is_err(),
        "expected a paused node to answer nothing, got {answer:?}"
    );
    c.resume(f).await.expect("expected docker unpause to work");
    wait::until(
        "the resumed node to answer /healthz",
        CLUSTER_TIMEOUT,
        || async {
            match quick.healthz().await {
                Ok(s) if s.is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .expect("expected the resumed node to answer");
    eprintln!("pause/resume done at {:.1?}", t0.elapsed());

    // A cut outlives a restart: the container comes back in a fresh network namespace
    // and the backend re-applies the rules, so the isolated node misses a write.
    let leader = leader_among(&c, &[0, 1, 2]).await;
    let f = (0..3).find(|&i| i != leader).expect("a follower");
    for j in (0..3).filter(|&j| j != f) {
        c.cut(f, j).await.expect("expected the cut to apply");
    }
    c.kill(f).await.expect("expected docker kill to work");
    c.start(f)
        .await
        .expect("expected the cut-off node to restart");
    create_tenant(&c, leader, "t4").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let isolated = c.client(f).expect("client").with_timeout(PROBE);
    let seen = isolated.get("tenants", "t4", Read::Local).await;
    assert!(
        seen.is_err(),
        "expected node {} to stay cut off after its restart, but it has t4: {seen:?}",
        f + 1
    );
    c.heal().await.expect("expected heal to flush the cuts");
    wait_tenant(&c, f, "t4").await;
    eprintln!("docker backend test done in {:.1?}", t0.elapsed());
}
