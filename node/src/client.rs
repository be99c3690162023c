//! Admin subcommands of the CLI: thin HTTP calls to a node's admin API.
//!
//! Exit status: 0 success, 1 the server refused (its JSON error on stderr), 2 a node
//! could not be reached (connection failure, or 502/503/504 from the node), 64 bad usage.

use std::io::Read;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::{BodyArgs, ClientArgs, ClusterCommand, Command, KeyCommand, TokenCommand};

mod audit;
mod secrets;
mod top;

pub const EXIT_REFUSED: i32 = 1;
pub const EXIT_UNREACHABLE: i32 = 2;
pub const EXIT_USAGE: i32 = 64;

/// A failed CLI call: what to print and the exit status.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

fn usage(message: impl Into<String>) -> CliError {
    CliError {
        code: EXIT_USAGE,
        message: message.into(),
    }
}

struct Client {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

impl Client {
    fn new(args: &ClientArgs) -> Result<Client, CliError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5));
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| usage(format!("--ca-cert {}: {e}", path.display())))?;
            let ca = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| usage(format!("--ca-cert {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(ca);
        }
        let http = builder.build().map_err(|e| usage(e.to_string()))?;
        Ok(Client {
            http,
            server: args.server.trim_end_matches('/').to_string(),
            token: args.token.clone(),
        })
    }

    fn target(&self) -> crate::backup::Target<'_> {
        crate::backup::Target {
            http: &self.http,
            server: &self.server,
            token: self.token.as_deref(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        self.call_with(method, path, body, None).await
    }

    /// [`Client::call`] with one extra header (the join token for `cluster init`).
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        header: Option<(&str, String)>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.server);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| CliError {
            code: EXIT_UNREACHABLE,
            message: format!("cannot reach {}: {e}", self.server),
        })?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let code = if matches!(status.as_u16(), 502..=504) {
            EXIT_UNREACHABLE
        } else {
            EXIT_REFUSED
        };
        let message = match value["error"]["message"].as_str() {
            Some(m) => format!(
                "{status}: {} ({})",
                m,
                value["error"]["code"].as_str().unwrap_or("error")
            ),
            None => format!("{status} from {url}"),
        };
        Err(CliError { code, message })
    }
}

fn read_body(body: &BodyArgs) -> Result<Value, CliError> {
    let text = match (&body.file, &body.data) {
        (Some(path), _) if path.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| usage(format!("stdin: {e}")))?;
            s
        }
        (Some(path), _) => {
            std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))?
        }
        (None, Some(data)) => data.clone(),
        (None, None) => return Err(usage("give the JSON body with -f FILE or --data JSON")),
    };
    serde_json::from_str(&text).map_err(|e| usage(format!("the body is not valid JSON: {e}")))
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs one client subcommand.
pub async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Cluster { client, command } => cluster(Client::new(&client)?, command).await,
        Command::Get {
            client,
            collection,
            id,
            consistent,
        } => {
            let c = Client::new(&client)?;
            let q = if consistent { "?consistent=true" } else { "" };
            let path = match id {
                Some(id) => format!("/admin/v1/{collection}/{}{q}", encode(&id)),
                None => format!("/admin/v1/{collection}{q}"),
            };
            print(&c.call(Method::GET, &path, None).await?);
            Ok(())
        }
        Command::Create {
            client,
            collection,
            body,
        } => {
            let v = Client::new(&client)?
                .call(
                    Method::POST,
                    &format!("/admin/v1/{collection}"),
                    Some(read_body(&body)?),
                )
                .await?;
            print(&v);
            Ok(())
        }
        Command::Update {
            client,
            collection,
            id,
            body,
        } => {
            let path = format!("/admin/v1/{collection}/{}", encode(&id));
            print(
                &Client::new(&client)?
                    .call(Method::PUT, &path, Some(read_body(&body)?))
                    .await?,
            );
            Ok(())
        }
        Command::Delete {
            client,
            collection,
            id,
        } => {
            let path = format!("/admin/v1/{collection}/{}", encode(&id));
            print(
                &Client::new(&client)?
                    .call(Method::DELETE, &path, None)
                    .await?,
            );
            Ok(())
        }
        Command::Key {
            client,
            command: KeyCommand::Create { consumer, name },
        } => {
            let path = format!("/admin/v1/consumers/{}/keys", encode(&consumer));
            let v = Client::new(&client)?
                .call(Method::POST, &path, Some(json!({"name": name})))
                .await?;
            eprintln!("store this key now; it is not shown again");
            print(&v);
            Ok(())
        }
        Command::Token {
            client,
            command: command @ (TokenCommand::Revoke { .. } | TokenCommand::Revoked { .. }),
        } => audit::token(Client::new(&client)?, command).await,
        Command::Audit {
            client,
            since,
            until,
            actor,
            kind,
            limit,
            json,
        } => {
            let q = audit::Query {
                since,
                until,
                actor,
                kind,
                limit,
            };
            audit::audit(Client::new(&client)?, q, json).await
        }
        Command::Token {
            client,
            command:
                TokenCommand::Create {
                    role,
                    tenant,
                    subject,
                    ttl_secs,
                },
        } => {
            let body =
                json!({"role": role, "tenant": tenant, "subject": subject, "ttl_secs": ttl_secs});
            let v = Client::new(&client)?
                .call(Method::POST, "/admin/v1/tokens", Some(body))
                .await?;
            println!("{}", v["token"].as_str().unwrap_or_default());
            Ok(())
        }
        Command::Usage {
            client,
            policy,
            api_key,
            consumer,
            tenant,
            route,
            service,
            model,
            window,
            json,
        } => {
            let mut q = format!("window={}", encode(&window));
            for (k, v) in [
                ("policy", policy),
                ("api_key", api_key),
                ("consumer", consumer),
                ("tenant", tenant),
                ("route", route),
                ("service", service),
                ("model", model),
            ] {
                if let Some(v) = v {
                    q.push_str(&format!("&{k}={}", encode(&v)));
                }
            }
            let v = Client::new(&client)?
                .call(Method::GET, &format!("/admin/v1/usage?{q}"), None)
                .await?;
            if json {
                print(&v);
            } else {
                print_usage(&v);
            }
            Ok(())
        }
        Command::Logs {
            client,
            tenant,
            consumer,
            route,
            model,
            status,
            min_latency_ms,
            since,
            limit,
            cursor,
            json,
        } => {
            let mut q = Vec::new();
            if let Some(s) = since {
                let back = parse_duration_ms(&s).ok_or_else(|| {
                    usage(format!(
                        "--since {s:?}: expected a duration like 30s, 15m, 2h or 7d"
                    ))
                })?;
                q.push(format!(
                    "from_ms={}",
                    crate::proxy::unix_ms().saturating_sub(back)
                ));
            }
            for (k, v) in [
                ("tenant", tenant),
                ("consumer", consumer),
                ("route", route),
                ("model", model),
                ("status_class", status),
                ("min_latency_ms", min_latency_ms.map(|n| n.to_string())),
                ("limit", limit.map(|n| n.to_string())),
                ("cursor", cursor),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            }
            let v = Client::new(&client)?
                .call(
                    Method::GET,
                    &format!("/admin/v1/logs?{}", q.join("&")),
                    None,
                )
                .await?;
            if json {
                print(&v);
            } else {
                print_logs(&v);
            }
            Ok(())
        }
        Command::Top {
            client,
            by,
            interval,
            once,
        } => top::run(Client::new(&client)?, by, interval, once).await,
        Command::Secrets { client, command } => secrets::run(Client::new(&client)?, command).await,
        Command::Backup { client, out } => {
            let c = Client::new(&client)?;
            crate::backup::save(c.target(), &out).await
        }
        Command::Restore { client, from } => {
            let c = Client::new(&client)?;
            crate::backup::restore(c.target(), &from).await
        }
        Command::Serve(_) | Command::Dev(_) | Command::Certs(_) => {
            Err(usage("not a client command"))
        }
    }
}

/// Percent-encodes an id for a URL path segment (model names may hold `/` and `:`).
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn cluster(c: Client, command: ClusterCommand) -> Result<(), CliError> {
    match command {
        ClusterCommand::Init => {
            // A node with a join token initializes only for a caller presenting it.
            let join_token = std::env::var("RAFTGATE_JOIN_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty())
                .map(|t| {
                    (
                        crate::admin::cluster::JOIN_TOKEN_HEADER,
                        t.trim().to_string(),
                    )
                });
            let v = c
                .call_with(Method::POST, "/admin/v1/cluster/init", None, join_token)
                .await?;
            eprintln!(
                "cluster {} initialized on node {}; admin token:",
                v["cluster_id"].as_str().unwrap_or("?"),
                v["node_id"]
            );
            println!("{}", v["admin_token"].as_str().unwrap_or_default());
        }
        ClusterCommand::Join { via, learner } => {
            let v = c
                .call(
                    Method::POST,
                    "/admin/v1/cluster/join",
                    Some(json!({"via": via, "learner": learner})),
                )
                .await?;
            println!(
                "node {} joined cluster {} as {}",
                v["node_id"],
                v["cluster_id"].as_str().unwrap_or("?"),
                if learner { "learner" } else { "voter" }
            );
        }
        ClusterCommand::Leave => {
            let v = c
                .call(Method::POST, "/admin/v1/cluster/leave", None)
                .await?;
            println!("node {} left the cluster", v["removed"]);
        }
        ClusterCommand::Remove { node_id } => {
            c.call(
                Method::DELETE,
                &format!("/admin/v1/cluster/members/{node_id}"),
                None,
            )
            .await?;
            println!("node {node_id} removed");
        }
        ClusterCommand::Status { json } => {
            let v = c.call(Method::GET, "/admin/v1/cluster", None).await?;
            if json {
                print(&v);
            } else {
                print_status(&v);
            }
        }
    }
    Ok(())
}

fn print_usage(v: &Value) {
    println!(
        "{:<16} {:<32} {:<8} {:<7} {:>12} {:>12} {:>12} {:>12}",
        "POLICY", "SCOPE", "WINDOW", "CURRENT", "USED", "GRANTED", "LIMIT", "REMAINING"
    );
    let num = |x: &Value| x.as_u64().map_or("-".to_string(), |n| n.to_string());
    for it in v["items"].as_array().into_iter().flatten() {
        let scope: Vec<String> = it["scope"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        println!(
            "{:<16} {:<32} {:<8} {:<7} {:>12} {:>12} {:>12} {:>12}",
            it["policy"].as_str().unwrap_or("-"),
            if scope.is_empty() {
                "-".to_string()
            } else {
                scope.join(",")
            },
            it["window"].as_str().unwrap_or("-"),
            if it["current"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            num(&it["used"]),
            num(&it["granted"]),
            num(&it["limit"]),
            num(&it["remaining"]),
        );
    }
}

/// `30s`, `15m`, `2h`, `7d` (or plain seconds) in ms.
fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let per = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(per)
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) of a Unix time in µs.
fn utc(us: u64) -> String {
    let secs = i64::try_from(us / 1_000_000).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            us % 1_000_000 / 1000
        ),
        Err(_) => us.to_string(),
    }
}

fn print_logs(v: &Value) {
    println!(
        "{:<23} {:>4} {:>6} {:>9} {:<16} {:<12} {:<14} {:<16} PATH",
        "TIME (UTC)", "NODE", "STATUS", "MS", "ROUTE", "TENANT", "CONSUMER", "MODEL"
    );
    let s = |x: &Value| x.as_str().unwrap_or("-").to_string();
    for it in v["items"].as_array().into_iter().flatten() {
        println!(
            "{:<23} {:>4} {:>6} {:>9.1} {:<16} {:<12} {:<14} {:<16} {} {}",
            utc(it["time_us"].as_u64().unwrap_or(0)),
            it["node_id"],
            it["status"],
            it["latency_us"].as_u64().unwrap_or(0) as f64 / 1000.0,
            s(&it["route"]),
            s(&it["tenant"]),
            s(&it["consumer"]),
            s(&it["model"]),
            s(&it["method"]),
            s(&it["path"]),
        );
    }
    if v["partial"].as_bool().unwrap_or(false) {
        eprintln!(
            "partial answer: nodes {} did not answer in time",
            v["missing_nodes"]
        );
    }
    if let Some(c) = v["next_cursor"].as_str() {
        eprintln!("more: --cursor {c}");
    }
}

fn print_status(v: &Value) {
    println!(
        "cluster {}  leader {}  term {}",
        v["cluster_id"].as_str().unwrap_or("-"),
        v["leader_id"],
        v["term"]
    );
    println!(
        "{:>4}  {:<10} {:<7} {:>6} {:>9} {:>9}  {:<22} ADMIN",
        "ID", "ROLE", "VOTER", "TERM", "LAST_LOG", "APPLIED", "RAFT"
    );
    let opt = |x: &Value| x.as_u64().map_or("-".to_string(), |n| n.to_string());
    for n in v["nodes"].as_array().into_iter().flatten() {
        println!(
            "{:>4}  {:<10} {:<7} {:>6} {:>9} {:>9}  {:<22} {}",
            opt(&n["id"]),
            n["role"].as_str().unwrap_or("-"),
            if n["voter"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            opt(&n["term"]),
            opt(&n["last_log_index"]),
            opt(&n["applied_index"]),
            n["raft_addr"].as_str().unwrap_or("-"),
            n["admin_url"].as_str().unwrap_or("-"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration_ms("15m"), Some(900_000));
        assert_eq!(parse_duration_ms("30"), Some(30_000));
        assert_eq!(parse_duration_ms("7d"), Some(604_800_000));
        assert_eq!(parse_duration_ms("2x"), None);
        assert_eq!(parse_duration_ms("m"), None);
        assert_eq!(parse_duration_ms("99999999999999999d"), None);
        assert_eq!(utc(1_700_000_000_123_456), "2023-11-14 22:13:20.123");
    }
}
