//! `raftgate audit`, `raftgate token revoke` and `raftgate token revoked`.

use reqwest::Method;
use serde_json::{json, Value};

use super::{encode, parse_duration_ms, print, usage, utc, CliError, Client};
use crate::cli::TokenCommand;

/// Filters of `raftgate audit`, as typed.
pub struct Query {
    pub since: Option<String>,
    pub until: Option<String>,
    pub actor: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<usize>,
}

/// `DURATION` ago, in Unix ms.
fn ago(flag: &str, s: &str) -> Result<u64, CliError> {
    let back = parse_duration_ms(s).ok_or_else(|| {
        usage(format!(
            "--{flag} {s:?}: expected a duration like 30s, 15m, 2h or 7d"
        ))
    })?;
    Ok(crate::proxy::unix_ms().saturating_sub(back))
}

/// The query string for `q`.
fn query_string(q: Query) -> Result<String, CliError> {
    let mut parts = Vec::new();
    if let Some(s) = &q.since {
        parts.push(format!("since={}", ago("since", s)?));
    }
    if let Some(u) = &q.until {
        parts.push(format!("until={}", ago("until", u)?));
    }
    for (k, v) in [
        ("actor", q.actor),
        ("kind", q.kind),
        ("limit", q.limit.map(|n| n.to_string())),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", encode(&v)));
        }
    }
    Ok(parts.join("&"))
}

pub async fn audit(client: Client, q: Query, json: bool) -> Result<(), CliError> {
    let path = format!("/admin/v1/audit?{}", query_string(q)?);
    let v = client.call(Method::GET, &path, None).await?;
    if json {
        print(&v);
        return Ok(());
    }
    let items = v["items"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<23}  {:<16} {:<12} {:>4}  {:<6} {:<28} {:<12} OUTCOME",
        "TIME (UTC)", "ACTOR", "ROLE", "NODE", "OP", "RESOURCE", "TENANT"
    );
    for it in &items {
        let resource = match (it["kind"].as_str(), it["id"].as_str()) {
            (Some(k), Some(id)) => format!("{k}/{id}"),
            (None, Some(id)) => id.to_string(),
            _ => "-".into(),
        };
        println!(
            "{:<23}  {:<16} {:<12} {:>4}  {:<6} {:<28} {:<12} {}",
            utc(it["at_ms"].as_u64().unwrap_or(0).saturating_mul(1000)),
            it["actor"].as_str().unwrap_or("-"),
            it["role"].as_str().unwrap_or("-"),
            it["node"].as_u64().unwrap_or(0),
            it["op"].as_str().unwrap_or("-"),
            resource,
            it["tenant"].as_str().unwrap_or("-"),
            it["outcome"].as_str().unwrap_or("-"),
        );
    }
    if v["more"].as_bool() == Some(true) {
        eprintln!("more records match: narrow with --since/--until or raise --limit");
    }
    Ok(())
}

pub async fn token(client: Client, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Revoke {
            jti,
            exp,
            target,
            own,
        } => {
            let body = match (jti, target, own) {
                (Some(jti), None, false) => json!({"jti": jti, "exp": exp}),
                (None, Some(t), false) => json!({"token": t}),
                (None, None, true) => {
                    let t = client
                        .token
                        .clone()
                        .ok_or_else(|| usage("--self needs --token (or RAFTGATE_TOKEN)"))?;
                    json!({"token": t})
                }
                _ => return Err(usage("give one of --jti, --target and --self")),
            };
            let v = client
                .call(Method::POST, "/admin/v1/tokens/revoke", Some(body))
                .await?;
            print(&v);
            Ok(())
        }
        TokenCommand::Revoked { json } => {
            let v = client
                .call(Method::GET, "/admin/v1/tokens/revoked", None)
                .await?;
            if json {
                print(&v);
                return Ok(());
            }
            println!("{:<34} {:<23}  REVOKED BY", "JTI", "EXPIRES (UTC)");
            for it in v["items"].as_array().cloned().unwrap_or_default() {
                let exp: &Value = &it["exp"];
                println!(
                    "{:<34} {:<23}  {}",
                    it["jti"].as_str().unwrap_or("-"),
                    utc(exp.as_u64().unwrap_or(0).saturating_mul(1_000_000)),
                    it["revoked_by"].as_str().unwrap_or("-"),
                );
            }
            Ok(())
        }
        TokenCommand::Create { .. } => Err(usage("not a revocation command")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_query_strings() {
        let q = Query {
            since: None,
            until: None,
            actor: Some("ops team".into()),
            kind: Some("consumers".into()),
            limit: Some(5),
        };
        assert_eq!(
            query_string(q).unwrap(),
            "actor=ops%20team&kind=consumers&limit=5"
        );
        let q = Query {
            since: Some("1h".into()),
            until: Some("2x".into()),
            actor: None,
            kind: None,
            limit: None,
        };
        assert!(query_string(q).is_err());
        let q = Query {
            since: Some("1h".into()),
            until: None,
            actor: None,
            kind: None,
            limit: None,
        };
        let s = query_string(q).unwrap();
        let since: u64 = s.strip_prefix("since=").unwrap().parse().unwrap();
        let now = crate::proxy::unix_ms();
        assert!(since <= now - 3_600_000 && since > now - 3_700_000, "{s}");
    }
}
