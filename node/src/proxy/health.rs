//! Active health checks: every node probes every target of upstreams that ask for it,
//! and flips the target after enough consecutive successes or failures.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use raftgate_store::model::ActiveHealthCheck;

use crate::proxy::client::HttpClient;
use crate::proxy::target::TargetState;

pub async fn probe_loop(
    target: Arc<TargetState>,
    base: String,
    cfg: ActiveHealthCheck,
    client: HttpClient,
) {
    let url = format!("{base}{}", cfg.path);
    let (mut ups, mut downs) = (0u32, 0u32);
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ok = probe(&client, &url, &cfg).await;
        if ok {
            ups += 1;
            downs = 0;
            if !target.active_healthy() && ups >= cfg.healthy_threshold {
                target.set_active_healthy(true);
                tracing::info!(target = %target.address, "health check: target is healthy again");
            }
        } else {
            downs += 1;
            ups = 0;
            if target.active_healthy() && downs >= cfg.unhealthy_threshold {
                target.set_active_healthy(false);
                tracing::warn!(target = %target.address, probe = %url, "health check: target is unhealthy");
            }
        }
    }
}

async fn probe(client: &HttpClient, url: &str, cfg: &ActiveHealthCheck) -> bool {
    let Ok(req) = http::Request::get(url)
        .header(http::header::USER_AGENT, "raftgate-health-check")
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync())
    else {
        return false;
    };
    let call = async {
        let resp = client.request(req).await.ok()?;
        let status = resp.status().as_u16();
        // Read the (small) body so the connection goes back to the pool.
        let _ = resp.into_body().collect().await;
        Some(status)
    };
    match tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), call).await {
        Ok(Some(status)) if cfg.expected_statuses.is_empty() => (200..400).contains(&status),
        Ok(Some(status)) => cfg.expected_statuses.contains(&status),
        _ => false,
    }
}
