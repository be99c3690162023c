//! Bounded polling: every wait in the harness has a deadline and names what it awaited.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{ChaosError, Result};

/// First pause between two probes; doubles up to [`MAX_INTERVAL`].
const FIRST_INTERVAL: Duration = Duration::from_millis(20);
const MAX_INTERVAL: Duration = Duration::from_millis(250);

/// Calls `probe` until it returns `Ok`, or fails with [`ChaosError::Timeout`] after `timeout`.
///
/// `probe` answers `Err(observation)` while the condition does not hold yet; the last
/// observation is quoted in the timeout error so a failure says what was seen.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let mut interval = FIRST_INTERVAL;
    loop {
        let last = match tokio::time::timeout_at(deadline, probe()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(observation)) => observation,
            Err(_) => "the last probe itself did not finish before the deadline".to_string(),
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(ChaosError::Timeout {
                what: what.to_string(),
                after: now - start,
                last,
            });
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(MAX_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_success() {
        let mut n = 0;
        let v = until("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            let seen = n;
            async move {
                if seen >= 3 {
                    Ok(seen)
                } else {
                    Err(format!("n = {seen}"))
                }
            }
        })
        .await
        .expect("reaches 3");
        assert_eq!(v, 3);
    }

    #[tokio::test]
    async fn times_out_naming_what_and_the_last_observation() {
        let err = until::<(), _, _>("the impossible", Duration::from_millis(100), || async {
            Err("still no".to_string())
        })
        .await
        .expect_err("must time out");
        let text = err.to_string();
        assert!(
            text.contains("the impossible") && text.contains("still no"),
            "{text}"
        );
    }
}
