//! `raftgate top`: a live table of the last minute's traffic per route (or model, …) from
//! the cluster-wide analytics endpoints, refreshed every few seconds; `--once` prints one
//! frame and exits (scripts, tests).

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::{usage, CliError, Client};

/// Rows shown at most.
const ROWS: usize = 20;
/// How far back a frame looks; the server widens it to whole minutes.
const WINDOW_MS: u64 = 60_000;

/// Runs the view until Ctrl-C (or once).
pub(super) async fn run(c: Client, by: String, interval: f64, once: bool) -> Result<(), CliError> {
    if !matches!(
        by.as_str(),
        "route" | "model" | "consumer" | "tenant" | "provider"
    ) {
        return Err(usage(format!(
            "--by must be route, model, consumer, tenant or provider, not {by:?}"
        )));
    }
    if !(0.2..=3600.0).contains(&interval) {
        return Err(usage("--interval must be 0.2..=3600 seconds"));
    }
    if once {
        let frame = fetch(&c, &by).await?;
        print!("{frame}");
        return Ok(());
    }
    loop {
        let frame = match fetch(&c, &by).await {
            Ok(f) => f,
            Err(e) => format!("raftgate top: {}\n", e.message),
        };
        // Clear the screen and home the cursor, then draw.
        print!("\x1b[2J\x1b[H{frame}");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(interval)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn fetch(c: &Client, by: &str) -> Result<String, CliError> {
    let now = crate::proxy::unix_ms();
    let range = format!(
        "from_ms={}&to_ms={}",
        now.saturating_sub(WINDOW_MS),
        now + 1
    );
    let top = c
        .call(
            Method::GET,
            &format!("/admin/v1/analytics/top?dimension={by}&by=requests&limit={ROWS}&{range}"),
            None,
        )
        .await?;
    let series = c
        .call(
            Method::GET,
            &format!("/admin/v1/analytics/timeseries?dimension=all&{range}"),
            None,
        )
        .await?;
    Ok(render(by, &top, &series))
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn ms(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |m| format!("{m:.1}"))
}

/// One frame: a header, one row per key (busiest first) and the cluster total.
pub(super) fn render(by: &str, top: &Value, series: &Value) -> String {
    let from = num(&top["from_ms"]);
    let to = num(&top["to_ms"]).max(from + 1);
    let secs = (to - from) as f64 / 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "raftgate top: by {by}, last {secs:.0}s (per-minute rollups of every node)"
    );
    if top["partial"].as_bool().unwrap_or(false) || series["partial"].as_bool().unwrap_or(false) {
        let _ = writeln!(
            out,
            "PARTIAL: nodes {} did not answer; their calls are missing",
            top["missing_nodes"]
        );
    }
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>9} {:>6} {:>6} {:>9} {:>9} {:>10} {:>10} {:>10}",
        by.to_uppercase(),
        "REQ/S",
        "REQUESTS",
        "4XX",
        "5XX",
        "P50_MS",
        "P99_MS",
        "TOKENS_IN",
        "TOKENS_OUT",
        "COST"
    );
    let mut row = |name: &str, v: &Value| {
        let req = num(&v["requests"]);
        let _ = writeln!(
            out,
            "{:<24} {:>8.2} {:>9} {:>6} {:>6} {:>9} {:>9} {:>10} {:>10} {:>10.4}",
            name,
            req as f64 / secs,
            req,
            num(&v["errors_4xx"]),
            num(&v["errors_5xx"]),
            ms(&v["p50_ms"]),
            ms(&v["p99_ms"]),
            num(&v["tokens_in"]),
            num(&v["tokens_out"]),
            v["cost"].as_f64().unwrap_or(0.0),
        );
    };
    for it in top["items"].as_array().into_iter().flatten() {
        row(it["key"].as_str().unwrap_or("-"), it);
    }
    // The total has no merged percentiles across minutes: show the latest minute's.
    let points = series["points"].as_array().cloned().unwrap_or_default();
    let mut total = serde_json::Map::new();
    for k in [
        "requests",
        "errors_4xx",
        "errors_5xx",
        "tokens_in",
        "tokens_out",
    ] {
        let sum: u64 = points.iter().map(|p| num(&p[k])).sum();
        total.insert(k.into(), sum.into());
    }
    let cost: f64 = points.iter().filter_map(|p| p["cost"].as_f64()).sum();
    total.insert("cost".into(), cost.into());
    if let Some(last) = points.iter().rev().find(|p| num(&p["requests"]) > 0) {
        total.insert("p50_ms".into(), last["p50_ms"].clone());
        total.insert("p99_ms".into(), last["p99_ms"].clone());
    }
    row("(all calls)", &Value::Object(total));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_rows_rates_and_partial_answers() {
        let top = json!({
            "from_ms": 60_000, "to_ms": 180_000, "partial": true, "missing_nodes": [3],
            "items": [
                {"key": "ra", "requests": 240, "errors_4xx": 1, "errors_5xx": 2,
                 "p50_ms": 10.04, "p99_ms": 99.5, "tokens_in": 5, "tokens_out": 6, "cost": 0.25},
                {"key": "rb", "requests": 12, "p50_ms": null, "p99_ms": null}
            ]
        });
        let series = json!({"points": [
            {"requests": 200, "errors_4xx": 1, "errors_5xx": 0, "p50_ms": 9.0, "p99_ms": 50.0},
            {"requests": 52, "errors_4xx": 0, "errors_5xx": 2, "p50_ms": 11.0, "p99_ms": 98.0}
        ]});
        let f = render("route", &top, &series);
        assert!(f.contains("last 120s"), "{f}");
        assert!(f.contains("PARTIAL: nodes [3]"), "{f}");
        let ra = f.lines().find(|l| l.starts_with("ra ")).unwrap();
        let cols: Vec<&str> = ra.split_whitespace().collect();
        assert_eq!(cols[..7], ["ra", "2.00", "240", "1", "2", "10.0", "99.5"]);
        let all = f.lines().find(|l| l.starts_with("(all calls)")).unwrap();
        let cols: Vec<&str> = all.split_whitespace().collect();
        assert_eq!(
            cols[2..8],
            ["2.10", "252", "1", "2", "11.0", "98.0"],
            "{all}"
        );
    }
}
