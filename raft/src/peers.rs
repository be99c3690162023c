//! One lazily connected gRPC channel per peer address, shared by every RPC to that peer.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use raftgate_proto::cluster_service_client::ClusterServiceClient;
use raftgate_proto::raft_service_client::RaftServiceClient;
use raftgate_proto::{NodeStatusRequest, MAX_MESSAGE_BYTES};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::error::{CallError, RaftGateError};
use crate::tls::{error_chain, is_tls_failure, PeerTls, ProbeError, ProbedPeer};
use crate::NodeId;

/// Channel cache keyed by `host:port`.
///
/// A tonic `Channel` multiplexes concurrent calls over one HTTP/2 connection and
/// reconnects by itself after failures, so one per address is all we need.
#[derive(Clone)]
pub(crate) struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    connect_timeout: Duration,
    /// Mutual TLS for every peer connection; plain h2c when `None`. Replaced (with the
    /// cache cleared) when the node's certificate is rotated.
    tls: Arc<RwLock<Option<ClientTlsConfig>>>,
}

impl Peers {
    #[cfg(test)]
    pub(crate) fn new(connect_timeout: Duration) -> Peers {
        Peers::with_tls(connect_timeout, None)
    }

    pub(crate) fn with_tls(connect_timeout: Duration, tls: Option<&PeerTls>) -> Peers {
        Peers {
            channels: Arc::default(),
            connect_timeout,
            tls: Arc::new(RwLock::new(tls.map(PeerTls::client_config))),
        }
    }

    /// New connections present `tls` from now on. Cached channels are dropped, so the
    /// next RPC to each peer dials afresh; calls in flight finish on their connection.
    pub(crate) fn set_tls(&self, tls: ClientTlsConfig) {
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = Some(tls);
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The endpoint for `addr` (`host:port`, or a URI): https with our TLS config when
    /// TLS is on, else http.
    fn endpoint(&self, addr: &str) -> Result<Endpoint, RaftGateError> {
        let tls = self.tls.read().unwrap_or_else(|p| p.into_inner()).clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("{scheme}://{addr}")
        };
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|e| RaftGateError::Invalid(format!("bad peer address '{addr}': {e}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            // Detect a silently dead peer (crash without FIN, partition) on idle connections.
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                RaftGateError::Invalid(format!("TLS for peer address '{addr}': {e}"))
            })?;
        }
        Ok(endpoint)
    }

    /// Connects to `addr` on a fresh connection (not the cache) and asks for its status,
    /// all within `timeout`. With TLS this proves both sides accept each other's
    /// certificates.
    pub(crate) async fn probe(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<ProbedPeer, ProbeError> {
        let endpoint = self.endpoint(addr).map_err(|e| ProbeError::Invalid {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        let failed = |err: &(dyn std::error::Error + 'static)| {
            let (addr, reason) = (addr.to_string(), error_chain(err));
            if is_tls_failure(err) {
                ProbeError::Tls { addr, reason }
            } else {
                ProbeError::Unreachable { addr, reason }
            }
        };
        let call = async {
            let channel = endpoint.connect().await.map_err(|e| failed(&e))?;
            let mut client = ClusterServiceClient::new(channel);
            let reply = client
                .node_status(NodeStatusRequest {})
                .await
                .map_err(|s| failed(&s))?
                .into_inner();
            Ok(ProbedPeer {
                id: reply.id,
                cluster_id: reply.cluster_id,
            })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(res) => res,
            Err(_) => Err(ProbeError::Unreachable {
                addr: addr.to_string(),
                reason: format!("no answer within {timeout:?}"),
            }),
        }
    }

    /// The channel to `addr`, created on first use. It connects when the first RPC is sent.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, RaftGateError> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ch) = channels.get(addr) {
            return Ok(ch.clone());
        }
        let ch = self.endpoint(addr)?.connect_lazy();
        channels.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    pub(crate) fn raft_client(
        &self,
        addr: &str,
    ) -> Result<RaftServiceClient<Channel>, RaftGateError> {
        Ok(RaftServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    pub(crate) fn cluster_client(
        &self,
        addr: &str,
    ) -> Result<ClusterServiceClient<Channel>, RaftGateError> {
        Ok(ClusterServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// True when the call failed while connecting, i.e. the peer never saw the request.
pub(crate) fn never_sent(status: &Status) -> bool {
    let mut source = status.source();
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// True for failures that say "the peer is not there (right now)" rather than "it said no".
/// True when the call ran out of time: the server's deadline, or tonic's client-side
/// request timeout (reported as `Cancelled` with "Timeout expired").
pub(crate) fn is_deadline(status: &Status) -> bool {
    status.code() == Code::DeadlineExceeded
        || (status.code() == Code::Cancelled && status.message() == "Timeout expired")
}

pub(crate) fn is_unreachable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    )
}

/// True when the connection failed after the request was sent (tonic reports such
/// failures as `Unknown` carrying the transport error).
pub(crate) fn broke_in_flight(status: &Status) -> bool {
    if status.code() != Code::Unknown {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::transport::Error>() {
            return true;
        }
        source = err.source();
    }
    status.message() == "transport error"
}

/// Classifies a failed ClusterService call to `node`.
pub(crate) fn call_error(node: NodeId, status: &Status) -> CallError {
    let reason = format!("{}: {}", status.code(), status.message());
    if never_sent(status) {
        CallError::NotSent(RaftGateError::Unreachable { node, reason })
    } else if status.code() == Code::DeadlineExceeded || broke_in_flight(status) {
        // The request may have reached the peer: the outcome is unknown, not an error of it.
        CallError::Failed(RaftGateError::Timeout(format!(
            "call to node {node}: {reason}"
        )))
    } else if is_unreachable(status) {
        CallError::Failed(RaftGateError::Unreachable { node, reason })
    } else {
        CallError::Failed(RaftGateError::Internal(format!(
            "node {node} answered {reason}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_connection_is_classified_as_never_sent() {
        // Bind then drop a listener to get a port with nobody behind it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);

        let peers = Peers::new(Duration::from_millis(500));
        let mut client = peers.cluster_client(&addr).unwrap();
        let status = client
            .node_status(raftgate_proto::NodeStatusRequest {})
            .await
            .unwrap_err();
        assert!(never_sent(&status), "{status:?}");
        assert!(matches!(
            call_error(7, &status),
            CallError::NotSent(RaftGateError::Unreachable { node: 7, .. })
        ));
        // Same address, same channel.
        assert!(peers.channel(&addr).is_ok());
        assert_eq!(peers.channels.lock().unwrap().len(), 1);
    }

    #[test]
    fn bad_address_is_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let peers = Peers::new(Duration::from_millis(100));
            assert!(matches!(
                peers.channel("not a uri \n"),
                Err(RaftGateError::Invalid(_))
            ));
        });
    }
}
