//! `raftgate secrets rotate` and `raftgate secrets status` (docs/security.md).

use reqwest::Method;
use serde_json::{json, Value};

use super::{print, CliError, Client};
use crate::cli::SecretsCommand;

pub async fn run(c: Client, command: SecretsCommand) -> Result<(), CliError> {
    match command {
        SecretsCommand::Rotate { dry_run, json } => {
            let v = c
                .call(
                    Method::POST,
                    "/admin/v1/secrets/rotate",
                    Some(json!({"dry_run": dry_run})),
                )
                .await?;
            if json {
                print(&v);
            } else {
                let verb = if dry_run {
                    "would re-encrypt"
                } else {
                    "re-encrypted"
                };
                println!(
                    "{verb} {} of {} stored secrets under key {} ({} already under it)",
                    v["reencrypted"],
                    v["total"],
                    v["key_id"].as_str().unwrap_or("?"),
                    v["already_current"]
                );
                print_counts(&v["by_kind"]);
            }
        }
        SecretsCommand::Status { json } => {
            let v = c
                .call(Method::GET, "/admin/v1/secrets/status", None)
                .await?;
            if json {
                print(&v);
            } else {
                print_status(&v);
            }
        }
    }
    Ok(())
}

fn print_counts(counts: &Value) {
    if let Some(m) = counts.as_object() {
        for (k, n) in m {
            println!("  {k:<20} {n}");
        }
    }
}

fn print_status(v: &Value) {
    let s = &v["secrets"];
    println!(
        "node {}: current key {}, previous keys {}",
        v["node_id"],
        v["current_key_id"].as_str().unwrap_or("(none)"),
        v["previous_key_ids"]
    );
    println!(
        "{} stored secrets: {} in the clear, {} unreadable on this node, {} enc:v1",
        s["total"], s["plaintext"], s["unreadable"], s["legacy_v1"]
    );
    println!("by key id:");
    print_counts(&s["by_key"]);
    println!("by kind:");
    print_counts(&s["by_kind"]);
    if v["rotation_needed"].as_bool() == Some(true) {
        println!("run `raftgate secrets rotate`: some secrets are not under the current key");
    } else {
        println!("every secret is under the current key: previous keys can be removed");
    }
}
