//! A config change written on one node is served by the data plane of every node of a
//! 3-node cluster within a second of the write's acknowledgement.

use std::time::{Duration, Instant};

use serde_json::json;

use raftgate_chaos::ClusterBuilder;

use crate::{data_client, serial, served_by, upstream, upstream_body};

/// How long after the acknowledgement each node may take.
const PROPAGATION: Duration = Duration::from_secs(1);

/// Polls `url` every 10 ms until `want(answer)` or 5 s pass: the elapsed time since
/// `since` when it held, or the last answer.
async fn first_time(
    client: &reqwest::Client,
    url: &str,
    since: Instant,
    want: impl Fn(&str) -> bool,
) -> Result<Duration, String> {
    let deadline = since + Duration::from_secs(5);
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.get(url).timeout(Duration::from_secs(1)).send().await {
            Ok(resp) => {
                last = served_by(resp).await;
                if want(&last) {
                    return Ok(since.elapsed());
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_written_on_one_node_is_served_by_all_three_within_a_second() {
    let _serial = serial().await;
    let cluster = ClusterBuilder::new(3)
        .form()
        .await
        .expect("a 3-node cluster forms");
    let server = upstream("everywhere").await;
    let leader = cluster.wait_leader().await.expect("a leader");
    // Write through a follower: the forwarded path is the longer one.
    let via = cluster.followers(leader)[0];
    let admin = cluster.client(via).expect("admin client");
    admin
        .create("upstreams", &upstream_body("u", &[&server]))
        .await
        .expect("create upstream");
    let client = data_client().build().expect("client");
    let urls: Vec<String> = (0..3)
        .map(|i| format!("http://{}/prop/x", cluster.info(i).expect("info").http_addr))
        .collect();
    for url in &urls {
        assert_eq!(
            served_by(client.get(url).send().await.expect("answer")).await,
            "404 no_route"
        );
    }

    admin
        .create(
            "routes",
            &json!({"id": "prop", "path": "/prop", "target": {"upstream": "u"}}),
        )
        .await
        .expect("create route");
    let acked = Instant::now();
    let polls = urls
        .iter()
        .map(|url| first_time(&client, url, acked, |s| s == "everywhere"));
    let took = futures::future::join_all(polls).await;
    eprintln!(
        "route served after {took:?} (write via node {})",
        cluster.node_id(via)
    );
    for (i, t) in took.iter().enumerate() {
        match t {
            Ok(d) => assert!(
                *d < PROPAGATION,
                "node {} served the route after {d:?}",
                cluster.node_id(i)
            ),
            Err(last) => panic!(
                "node {} never served the route; last answer {last}",
                cluster.node_id(i)
            ),
        }
    }
    assert_eq!(
        took[via]
            .as_ref()
            .ok()
            .map(|d| *d < Duration::from_millis(200)),
        Some(true),
        "the acknowledging node must serve its own write at once: {:?}",
        took[via]
    );

    admin.delete("routes", "prop").await.expect("delete route");
    let acked = Instant::now();
    let polls = urls
        .iter()
        .map(|url| first_time(&client, url, acked, |s| s == "404 no_route"));
    for (i, t) in futures::future::join_all(polls).await.iter().enumerate() {
        match t {
            Ok(d) => assert!(
                *d < PROPAGATION,
                "node {} still served the deleted route for {d:?}",
                cluster.node_id(i)
            ),
            Err(last) => panic!(
                "node {} kept serving the deleted route; last answer {last}",
                cluster.node_id(i)
            ),
        }
    }
}
