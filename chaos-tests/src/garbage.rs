//! Junk for a node's Raft port: random bytes, an HTTP/2 preface followed by garbage, broken
//! HTTP/2 frames, and well-framed gRPC calls whose messages are junk. A healthy node
//! answers or closes the connection, and keeps serving.
//!
//! Membership RPCs (`AddMember`, `RemoveMember`) are left out on purpose: junk can decode
//! into a well-formed request there, which a trusted peer may legitimately send.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{ChaosError, Result};

/// The HTTP/2 client connection preface.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// gRPC methods that take codec-encoded payloads, where junk must be refused.
pub const GRPC_TARGETS: [&str; 5] = [
    "/raftgate.v1.RaftService/AppendEntries",
    "/raftgate.v1.RaftService/Vote",
    "/raftgate.v1.RaftService/InstallSnapshot",
    "/raftgate.v1.ClusterService/Forward",
    "/raftgate.v1.ClusterService/ReadIndex",
];

/// How long one junk exchange may take before it counts as a hang.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// What happened to each piece of junk.
#[derive(Debug, Clone, Default)]
pub struct GarbageReport {
    /// One line per exchange: what was sent and how the node reacted.
    pub outcomes: Vec<String>,
    /// Exchanges that got neither an answer nor a closed connection in time.
    pub hangs: Vec<String>,
}

/// Throws every kind of junk at `raft_addr` (`host:port`), seeded for reproducibility.
pub async fn barrage(raft_addr: &str, seed: u64) -> Result<GarbageReport> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = GarbageReport::default();
    let junk = |rng: &mut StdRng, n: usize| {
        let mut v = vec![0u8; n];
        rng.fill(&mut v[..]);
        v
    };
    let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    // A DATA frame header claiming 16 MiB on stream 1, followed by far less.
    let huge_frame = [0xffu8, 0xff, 0xff, 0, 0, 0, 0, 0, 1];
    let raw_cases: Vec<(&str, Vec<u8>)> = vec![
        ("64 KiB of random bytes", junk(&mut rng, 64 * 1024)),
        (
            "HTTP/2 preface + 16 KiB of random bytes",
            [H2_PREFACE, &junk(&mut rng, 16 * 1024)].concat(),
        ),
        (
            "HTTP/2 preface + SETTINGS + oversized DATA frame header + junk",
            [H2_PREFACE, &settings, &huge_frame, &junk(&mut rng, 512)].concat(),
        ),
        (
            "an HTTP/1.1 request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
    ];
    for (label, bytes) in raw_cases {
        raw_exchange(raft_addr, label, &bytes, &mut report).await?;
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(EXCHANGE_TIMEOUT)
        .build()
        .map_err(|e| ChaosError::Invariant(format!("cannot build an HTTP/2 client: {e}")))?;
    for path in GRPC_TARGETS {
        let payload = junk(&mut rng, 300);
        // Field 1 (bytes) holding junk: valid protobuf, invalid codec payload.
        let mut wrapped = vec![0x0a, 0x80, 0x02];
        wrapped.extend_from_slice(&junk(&mut rng, 256));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "gRPC frame with a random message",
                grpc_frame(&payload, None),
            ),
            (
                "gRPC frame with valid protobuf around junk bytes",
                grpc_frame(&wrapped, None),
            ),
            (
                "gRPC frame header claiming 2 GiB",
                grpc_frame(&payload, Some(0x7fff_ffff)),
            ),
        ];
        for (label, body) in cases {
            let line = format!("{label} to {path}");
            let sent = client
                .post(format!("http://{raft_addr}{path}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(resp) => {
                    let grpc = resp
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("in trailers")
                        .to_string();
                    let status = resp.status();
                    // Drain the body so the stream completes (trailers carry grpc-status).
                    let drained = tokio::time::timeout(EXCHANGE_TIMEOUT, resp.bytes()).await;
                    if drained.is_err() {
                        report.hangs.push(format!("{line}: body never finished"));
                    }
                    report
                        .outcomes
                        .push(format!("{line}: HTTP {status}, grpc-status {grpc}"));
                }
                Err(e) if e.is_timeout() => report
                    .hangs
                    .push(format!("{line}: no answer within {EXCHANGE_TIMEOUT:?}")),
                Err(e) => report.outcomes.push(format!("{line}: refused ({e})")),
            }
        }
    }
    Ok(report)
}

/// A gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, bytes.
pub fn grpc_frame(message: &[u8], claimed_len: Option<u32>) -> Vec<u8> {
    let len = claimed_len.unwrap_or(u32::try_from(message.len()).unwrap_or(u32::MAX));
    let mut frame = vec![0u8];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// Sends `bytes` on a fresh connection, then reads until the node closes it or time runs out.
async fn raw_exchange(
    addr: &str,
    label: &str,
    bytes: &[u8],
    report: &mut GarbageReport,
) -> Result<()> {
    let mut stream = tokio::time::timeout(EXCHANGE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            ChaosError::Invariant(format!("connecting to the raft port {addr} timed out"))
        })?
        .map_err(|e| ChaosError::io(format!("connecting to the raft port {addr}"), e))?;
    // The node may close early; a failed write is a fine reaction to junk.
    let wrote = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(EXCHANGE_TIMEOUT, stream.read_to_end(&mut answer)).await;
    match read {
        Err(_) => report.hangs.push(format!(
            "{label}: connection still open after {EXCHANGE_TIMEOUT:?}"
        )),
        Ok(r) => report.outcomes.push(format!(
            "{label}: write {}, node answered {} bytes then {}",
            if wrote.is_ok() { "ok" } else { "cut short" },
            answer.len(),
            match r {
                Ok(_) => "closed".to_string(),
                Err(e) => format!("reset ({e})"),
            }
        )),
    }
    Ok(())
}
