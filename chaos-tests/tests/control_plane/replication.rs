//! (a) Writes through a follower are stored once and read back identically from every
//! node, with consistent and with local reads.

use raftgate_chaos::client::contains_fields;
use raftgate_chaos::{ClusterBuilder, Read};

use crate::{id_of, resource_chain, serial, wait_local_equal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_follower_read_back_equal_on_every_node() {
    let _serial = serial().await;
    let cluster = ClusterBuilder::new(3)
        .form()
        .await
        .expect("a 3-node cluster forms (init + 2 joins + 3 voters)");
    let leader = cluster.wait_leader().await.expect("a leader is elected");
    let follower = cluster.followers(leader)[0];
    let via = cluster.client(follower).expect("client");

    let mut stored = Vec::new();
    for (collection, body) in resource_chain("a") {
        let answer = via.create(collection, &body).await.unwrap_or_else(|e| {
            panic!(
                "POST /admin/v1/{collection} through follower node {}: {e}",
                cluster.node_id(follower)
            )
        });
        assert!(
            contains_fields(&answer, &body),
            "{collection}: the answer {answer} lacks fields of what was sent: {body}"
        );
        for field in ["revision", "created_at_ms", "updated_at_ms"] {
            assert!(
                answer.get(field).is_some_and(|v| v.is_u64()),
                "{collection}: the answer {answer} has no numeric '{field}'"
            );
        }
        stored.push((collection, id_of(&body), answer));
    }

    for i in 0..cluster.len() {
        let client = cluster.client(i).expect("client");
        for (collection, id, answer) in &stored {
            let got = client
                .get(collection, id, Read::Consistent)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "consistent GET {collection}/{id} on node {}: {e}",
                        cluster.node_id(i)
                    )
                });
            assert_eq!(
                &got,
                answer,
                "consistent GET {collection}/{id} on node {} differs from the create answer",
                cluster.node_id(i)
            );
            wait_local_equal(&client, collection, id, answer).await;
        }
        for (collection, id, answer) in &stored {
            let list = client
                .list(collection, Read::Local)
                .await
                .unwrap_or_else(|e| panic!("GET /admin/v1/{collection}: {e}"));
            let item = list
                .items
                .iter()
                .find(|v| v.get("id").and_then(|x| x.as_str()) == Some(id.as_str()));
            assert_eq!(
                item,
                Some(answer),
                "{collection} listing on node {} lacks {id} or differs",
                cluster.node_id(i)
            );
        }
    }
}
