//! Admin API, usage and metrics helpers of the quota tests.

use super::*;

pub(crate) async fn admin_get(cluster: &LocalCluster, i: usize, path: &str) -> (StatusCode, Value) {
    cluster
        .client(i)
        .expect("admin client")
        .get_json(path)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on node {}: {e}", i + 1))
}

/// The one usage item of `q1` (`consistent=true` when asked), from node `i`.
pub(crate) async fn usage_item(
    cluster: &LocalCluster,
    i: usize,
    consistent: bool,
) -> Result<Value, String> {
    let path = format!(
        "/admin/v1/usage?policy=q1{}",
        if consistent { "&consistent=true" } else { "" }
    );
    let (status, v) = admin_get(cluster, i, &path).await;
    if !status.is_success() {
        return Err(format!("GET {path} on node {}: {status} {v}", i + 1));
    }
    match v["items"].as_array().map(Vec::as_slice) {
        Some([item]) => Ok(item.clone()),
        _ => Err(format!(
            "GET {path} on node {}: not exactly one item: {v}",
            i + 1
        )),
    }
}

/// `granted_by_node` of a usage item as node id → units.
pub(crate) fn granted_by_node(item: &Value) -> BTreeMap<u64, u64> {
    item["granted_by_node"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.parse()
                    .unwrap_or_else(|_| panic!("node id {k:?} in {item}")),
                v.as_u64()
                    .unwrap_or_else(|| panic!("units of node {k} in {item}")),
            )
        })
        .collect()
}

/// The sum of every sample of `name` whose labels include all `labels`.
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            if n != name {
                return None;
            }
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

pub(crate) async fn metrics_of(cluster: &LocalCluster, i: usize) -> String {
    let raw = cluster
        .client(i)
        .expect("admin client")
        .raw(Method::GET, "/metrics", None)
        .await
        .unwrap_or_else(|e| panic!("GET /metrics on node {}: {e}", i + 1));
    assert!(raw.status.is_success(), "GET /metrics: {}", raw.status);
    raw.body
}
