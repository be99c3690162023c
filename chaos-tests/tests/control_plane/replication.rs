//! (a) Writes through a follower are stored once and read back identically from every
//! node, with consistent and with local reads; a write's answer is the whole resource
//! it stored, also when a delete of the same id races it.

use raftgate_chaos::client::contains_fields;
use raftgate_chaos::{ClusterBuilder, Read};
use serde_json::json;

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
        assert_whole(&answer, &body, collection);
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

/// A write answers with the resource it stored, whole, even when a delete of the same id
/// lands right after it: the answer was read back after apply, and a racing delete left
/// only `{id, revision}` (schemathesis found it with two workers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_racing_a_delete_of_its_id_answers_with_the_whole_resource() {
    let _serial = serial().await;
    let cluster = ClusterBuilder::new(1)
        .form()
        .await
        .expect("a 1-node cluster");
    let client = cluster.client(0).expect("client");
    let body = json!({"id": "raced", "targets": [{"address": "127.0.0.1:9", "weight": 1}]});
    let (mut writes, mut deletes) = (0, 0);
    for round in 0..60 {
        client
            .create("upstreams", &body)
            .await
            .unwrap_or_else(|e| panic!("round {round}: create: {e}"));
        let mut changed = body.clone();
        changed["targets"][0]["weight"] = json!(2);
        let (put, del) = tokio::join!(
            client.update("upstreams", "raced", &changed),
            client.delete("upstreams", "raced")
        );
        // Either order is fine: a PUT before the delete answers the whole resource, one
        // after it finds nothing.
        match put {
            Ok(answer) => {
                writes += 1;
                assert_whole(&answer, &changed, &format!("round {round}: PUT"));
            }
            Err(e) => assert_eq!(
                e.status(),
                Some(reqwest::StatusCode::NOT_FOUND),
                "round {round}: a PUT after the delete: {e}"
            ),
        }
        if del.is_ok() {
            deletes += 1;
        }
        // A PUT that came after the delete found nothing: delete the survivor, if any.
        let _ = client.delete("upstreams", "raced").await;
    }
    assert_eq!(deletes, 60, "every round's delete found the upstream");
    println!("{writes} of 60 PUTs landed before their round's delete");
}

/// `answer` holds every field of what was `sent`, and the numeric bookkeeping fields of a
/// stored resource.
fn assert_whole(answer: &serde_json::Value, sent: &serde_json::Value, what: &str) {
    assert!(
        contains_fields(answer, sent),
        "{what}: the answer {answer} lacks fields of what was sent: {sent}"
    );
    for field in ["revision", "created_at_ms", "updated_at_ms"] {
        assert!(
            answer.get(field).is_some_and(|v| v.is_u64()),
            "{what}: the answer {answer} has no numeric '{field}'"
        );
    }
}
