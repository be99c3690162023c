//! (f) The `raftgate` CLI as an operator runs it: cluster init / join / status / remove,
//! exit codes for an unreachable node and bad configuration, and a node that belongs to
//! another cluster refusing to join.

use std::time::Duration;

use raftgate_chaos::cli::{run, CliOutput, CLI_TIMEOUT};
use raftgate_chaos::{wait, ClusterStatus, LocalCluster};

use crate::serial;

/// A misconfigured `serve` must exit by itself well within this.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

async fn cli(cluster: &LocalCluster, args: &[&str]) -> CliOutput {
    run(cluster.binary(), args, &[], CLI_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("raftgate {}: {e}", args.join(" ")))
}

/// `serve` may report on stdout (its log) or stderr; either counts.
fn combined(out: &CliOutput) -> String {
    format!("{}\n{}", out.stdout, out.stderr)
}

fn assert_exit(out: &CliOutput, code: i32, what: &str) {
    assert_eq!(
        out.code,
        Some(code),
        "{what}: expected exit code {code}; {}",
        out.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_commands_exit_codes_and_foreign_data_dirs() {
    let _serial = serial().await;
    let mut cluster = LocalCluster::start(3).await.expect("3 fresh nodes start");
    let url: Vec<String> = (0..3)
        .map(|i| cluster.admin_url(i).expect("admin url"))
        .collect();

    let out = cli(&cluster, &["cluster", "init", "--server", &url[0]]).await;
    assert_exit(&out, 0, "cluster init");
    let token = out.stdout.trim().to_string();
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "cluster init should print just the token on stdout; {}",
        out.describe()
    );
    cluster.set_token(&token);
    cluster
        .client(0)
        .expect("client")
        .cluster_status()
        .await
        .expect("the printed token authenticates GET /admin/v1/cluster");

    let out = cli(
        &cluster,
        &[
            "cluster", "join", "--server", &url[1], "--token", &token, "--via", &url[0],
        ],
    )
    .await;
    assert_exit(&out, 0, "cluster join --via");
    cluster
        .wait_for_voters(2)
        .await
        .expect("2 voters after the CLI join");

    let out = cli(
        &cluster,
        &[
            "cluster", "status", "--json", "--server", &url[0], "--token", &token,
        ],
    )
    .await;
    assert_exit(&out, 0, "cluster status --json");
    let status: ClusterStatus = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cluster status --json does not parse: {e}; {}",
            out.describe()
        )
    });
    let mut ids: Vec<u64> = status.nodes.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![1, 2],
        "cluster status --json should list nodes 1 and 2; {}",
        out.describe()
    );

    let out = cli(
        &cluster,
        &[
            "cluster", "remove", "2", "--server", &url[0], "--token", &token,
        ],
    )
    .await;
    assert_exit(&out, 0, "cluster remove 2");
    let client = cluster.client(0).expect("client");
    wait::until(
        "node 2 gone from the membership",
        Duration::from_secs(30),
        || async {
            let s = client.cluster_status().await.map_err(|e| e.to_string())?;
            if s.nodes.iter().any(|n| n.id == 2) {
                Err(s.summary())
            } else {
                Ok(())
            }
        },
    )
    .await
    .expect("cluster remove takes effect");

    let unreachable = "http://127.0.0.1:1";
    let out = cli(
        &cluster,
        &[
            "cluster",
            "join",
            "--server",
            &url[2],
            "--token",
            &token,
            "--via",
            unreachable,
        ],
    )
    .await;
    assert_exit(&out, 2, "cluster join --via an unreachable URL");
    assert!(
        out.stderr.contains("127.0.0.1:1"),
        "the error should name the unreachable URL; {}",
        out.describe()
    );

    let out = run(
        cluster.binary(),
        &["serve", "--config", "/nonexistent.toml"],
        &[],
        EXIT_TIMEOUT,
    )
    .await
    .expect("serve with a missing config exits by itself");
    assert_exit(&out, 64, "serve --config /nonexistent.toml");
    assert!(
        combined(&out).contains("/nonexistent.toml"),
        "the error should name the missing file; {}",
        out.describe()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "node_id = 5\nbogus_key = 1\n").expect("write the config");
    let config = config.to_string_lossy().into_owned();
    let out = run(
        cluster.binary(),
        &["serve", "--config", &config],
        &[],
        EXIT_TIMEOUT,
    )
    .await
    .expect("serve with a bad key exits by itself");
    assert_exit(&out, 64, "serve with an unknown TOML key");
    assert!(
        combined(&out).contains("bogus_key"),
        "the error should name the unknown key; {}",
        out.describe()
    );

    foreign_data_dir_refuses_to_join(&mut cluster, &token).await;
}

/// Node 3 becomes a one-node cluster of its own; it must refuse to join cluster 1, both
/// through `cluster join` and when started with `serve --join` on that data dir.
async fn foreign_data_dir_refuses_to_join(cluster: &mut LocalCluster, token: &str) {
    let url0 = cluster.admin_url(0).expect("admin url");
    let url2 = cluster.admin_url(2).expect("admin url");
    let other = cluster
        .anon_client(2)
        .expect("client")
        .init()
        .await
        .expect("node 3 initialises a cluster of its own");
    let out = cli(
        cluster,
        &[
            "cluster", "join", "--server", &url2, "--token", token, "--via", &url0,
        ],
    )
    .await;
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "a node of cluster {} must refuse to join another; {}",
        other.cluster_id,
        out.describe()
    );
    assert!(
        !out.stderr.trim().is_empty(),
        "the refusal should say why on stderr; {}",
        out.describe()
    );

    cluster.kill9(2).expect("stop node 3");
    let data_dir = cluster
        .data_dir(2)
        .expect("data dir")
        .to_string_lossy()
        .into_owned();
    let args = [
        "serve",
        "--node-id",
        "3",
        "--data-dir",
        &data_dir,
        "--http-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--raft-addr",
        "127.0.0.1:0",
        "--advertise-host",
        "127.0.0.1",
        "--join",
        &url0,
        "--token",
        token,
        "--insecure",
    ];
    let out = run(cluster.binary(), &args, &[], EXIT_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("serve --join with the data dir of another cluster should exit with an error, not keep running: {e}"));
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "serve --join on a foreign data dir must fail; {}",
        out.describe()
    );
    assert!(
        !combined(&out).trim().is_empty(),
        "serve --join on a foreign data dir should say why; {}",
        out.describe()
    );
    let members = cluster
        .client(0)
        .expect("client")
        .cluster_status()
        .await
        .expect("cluster 1 status");
    assert_eq!(
        members.nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![1],
        "cluster 1 must still be node 1 alone: {}",
        members.summary()
    );
}
