//! The chaos suite's external backend, end to end: a formed cluster of local processes
//! is handed to the suite only by its admin URLs and token, with a fault command that
//! pauses and resumes nodes by pid — the contract an operator's `ssh` + `systemctl`
//! script implements. (The process and Docker backends run in CI through the
//! `raftgate-chaos` binary, from `scripts/test.sh`.)

use std::time::Duration;

use raftgate_chaos::suite::check::Verdict;
use raftgate_chaos::suite::external::ExternalCluster;
use raftgate_chaos::suite::load::LoadShape;
use raftgate_chaos::suite::nemesis::Fault;
use raftgate_chaos::suite::scenario::{self, Settings};
use raftgate_chaos::ClusterBuilder;

/// The nodes' secret key (the suite's LLM provider has an API key, stored encrypted).
const SECRET_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn external_backend_runs_a_pause_scenario_through_the_operators_fault_command() {
    let cluster = ClusterBuilder::new(3)
        .env("RAFTGATE_SECRET_KEY", SECRET_KEY)
        .form()
        .await
        .expect("a 3-node cluster forms");
    let token = cluster.token().expect("an admin token").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let pids = dir.path().join("pids");
    let mut lines = String::new();
    for i in 0..cluster.len() {
        let pid = cluster
            .info(i)
            .expect("node info")
            .pid
            .expect("node.json names the pid");
        lines.push_str(&format!("{} {pid}\n", cluster.node_id(i)));
    }
    std::fs::write(&pids, lines).expect("write the pid map");
    let log = dir.path().join("actions.log");
    // What an operator writes: ACTION NODE_ID, everything else from the environment.
    let command = format!(
        "echo \"$1 $2 $RAFTGATE_FAULT_ACTION $RAFTGATE_FAULT_NODE $RAFTGATE_FAULT_HOST\" >> {log}; \
         pid=$(awk -v n=\"$2\" '$1 == n {{print $2}}' {pids}); \
         case \"$1\" in pause) kill -STOP \"$pid\";; resume) kill -CONT \"$pid\";; *) exit 3;; esac",
        log = log.display(),
        pids = pids.display()
    );
    let admin_urls: Vec<String> = (0..cluster.len())
        .map(|i| cluster.admin_url(i).expect("admin url"))
        .collect();
    let connect = || {
        ExternalCluster::connect(
            &admin_urls,
            &[],
            &token,
            Some(command.clone()),
            vec!["pause".into(), "resume".into()],
            "127.0.0.1".into(),
            "127.0.0.1".into(),
        )
    };
    let settings = Settings {
        seed: 7,
        warmup: Duration::from_secs(2),
        hold: Duration::from_secs(4),
        cooldown: Duration::from_secs(2),
        shape: LoadShape::default(),
        preformed: true,
    };

    // A scenario needing kill/start is skipped, naming what is missing.
    let mut ext = connect().await.expect("the suite connects by admin URLs");
    let skipped = scenario::run(Fault::KillLeader, &mut ext, &settings).await;
    assert_eq!(skipped.verdict, Verdict::Skip, "{skipped:?}");
    assert!(
        skipped.aborted.as_deref().unwrap_or("").contains("Kill"),
        "{skipped:?}"
    );

    let report = scenario::run(Fault::PauseLeader, &mut ext, &settings).await;
    for c in &report.checks {
        eprintln!("{} {:?}: {} {:?}", c.name, c.verdict, c.summary, c.evidence);
    }
    assert_eq!(report.aborted, None, "the scenario runs to the end");
    assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
    assert!(report.ops > 100, "the load ran: {} ops", report.ops);
    assert!(
        report.election_ms.is_some(),
        "a new leader was elected after the pause"
    );
    let actions = std::fs::read_to_string(&log).expect("the command ran");
    let lines: Vec<&str> = actions.lines().collect();
    assert_eq!(lines.len(), 2, "one pause and one resume: {actions}");
    assert!(
        lines[0].starts_with("pause ") && lines[1].starts_with("resume "),
        "{actions}"
    );
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(
        fields[0], fields[2],
        "$1 and RAFTGATE_FAULT_ACTION agree: {actions}"
    );
    assert_eq!(
        fields[1], fields[3],
        "$2 and RAFTGATE_FAULT_NODE agree: {actions}"
    );
    assert_eq!(
        fields[4], "127.0.0.1",
        "RAFTGATE_FAULT_HOST is the node's host: {actions}"
    );

    // The suite removed what it wrote: the operator's cluster is left as it was.
    let routes = cluster
        .client(0)
        .expect("client")
        .list("routes", raftgate_chaos::Read::Consistent)
        .await
        .expect("list routes");
    assert!(
        routes.items.is_empty(),
        "chaos resources cleaned up: {:?}",
        routes.items
    );
}
