//! HTTP clients to upstream targets: one keep-alive pool per upstream, HTTP/1.1 or
//! HTTP/2 (ALPN over TLS, prior knowledge over plain TCP), TLS verified by default.
//! Proxied HTTP/1.1 requests go through the lean pool of [`crate::proxy::pool`];
//! HTTP/2 upstreams and health probes use hyper-util's client.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use raftgate_store::model::{Scheme as UpScheme, Upstream, UpstreamProtocol, UpstreamTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use crate::proxy::pool::{host_header, host_of, H1Pool, UpstreamError};
use crate::proxy::{BoxError, ProxyBody};

pub type HttpClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// The client of one upstream: the lean HTTP/1.1 pool for proxied requests when the
/// upstream speaks HTTP/1.1, hyper-util's client otherwise and for health probes.
#[derive(Clone)]
pub struct UpstreamClient {
    pub legacy: HttpClient,
    h1: Option<Arc<H1Pool>>,
    tls: bool,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("h1_pool", &self.h1.is_some())
            .field("tls", &self.tls)
            .finish()
    }
}

impl UpstreamClient {
    /// Sends `req` (absolute URI to `authority`) and returns the response head with
    /// its body streaming.
    pub async fn request(
        &self,
        authority: &http::uri::Authority,
        mut req: http::Request<ProxyBody>,
    ) -> Result<http::Response<ProxyBody>, UpstreamError> {
        let Some(pool) = &self.h1 else {
            return match self.legacy.request(req).await {
                Ok(r) => Ok(r.map(|b| {
                    http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(
                        b,
                        BoxError::from,
                    ))
                })),
                Err(e) if e.is_connect() => Err(UpstreamError::connect(e)),
                Err(e) => Err(UpstreamError::other(e)),
            };
        };
        if !req.headers().contains_key(http::header::HOST) {
            if let Some(h) = host_header(authority, self.tls) {
                req.headers_mut().insert(http::header::HOST, h);
            }
        }
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *req.uri_mut() = http::Uri::from(pq);
        pool.send(authority, req).await
    }

    /// Whether requests with a body at hand whole can go through [`Self::request_whole`]
    /// (the upstream speaks HTTP/1.1).
    pub fn takes_whole(&self) -> bool {
        self.h1.is_some()
    }

    /// Sends a request whose body is at hand whole on the calling task, over the lean
    /// HTTP/1.1 pool (the head is borrowed, not copied). Only when [`Self::takes_whole`].
    pub async fn request_whole(
        &self,
        authority: &http::uri::Authority,
        req: Whole<'_>,
    ) -> Result<http::Response<ProxyBody>, UpstreamError> {
        let Some(pool) = &self.h1 else {
            return Err(UpstreamError::other(
                "an HTTP/2 upstream takes hyper requests",
            ));
        };
        let out = crate::proxy::wire::Outgoing {
            method: req.method,
            path_and_query: req.path_and_query.as_str(),
            host: Some(host_of(authority, self.tls)),
            headers: req.headers,
            body: req.body,
        };
        pool.send_whole(authority, out).await
    }

    /// Closes idle pooled connections past their idle timeout.
    pub fn sweep(&self) {
        if let Some(p) = &self.h1 {
            p.sweep();
        }
    }
}

/// A request whose body is at hand whole, its head borrowed from the caller.
#[derive(Clone, Copy)]
pub struct Whole<'a> {
    pub method: &'a http::Method,
    pub path_and_query: &'a http::uri::PathAndQuery,
    pub headers: &'a http::HeaderMap,
    pub body: &'a hyper::body::Bytes,
}

/// What decides whether two upstream versions can share a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientKey {
    scheme: UpScheme,
    protocol: UpstreamProtocol,
    tls: UpstreamTls,
    connect_ms: u64,
}

impl ClientKey {
    pub fn of(u: &Upstream) -> ClientKey {
        ClientKey {
            scheme: u.scheme,
            protocol: u.protocol,
            tls: u.tls.clone(),
            connect_ms: u.timeouts.connect_ms,
        }
    }

    /// HTTP/1.1, verified against the built-in web roots: the key of LLM providers.
    pub fn public(scheme: UpScheme, connect_ms: u64) -> ClientKey {
        ClientKey {
            scheme,
            protocol: UpstreamProtocol::Http1,
            tls: UpstreamTls::default(),
            connect_ms,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("tls.ca_pem: {0}")]
    Ca(String),
    #[error("tls.server_name: {0:?} is not a valid server name")]
    ServerName(String),
}

pub fn build(key: &ClientKey) -> Result<UpstreamClient, ClientError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_millis(key.connect_ms)));
    http.set_keepalive(Some(Duration::from_secs(60)));

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Ca(e.to_string()))?;
    // ALPN is set by the connector builder from the enabled protocols.
    let tls = if !key.tls.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &key.tls.ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| ClientError::Ca(e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| ClientError::Ca(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(ClientError::Ca("no certificate in PEM".into()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let tls_h1 = (key.scheme == UpScheme::Https).then(|| {
        let mut c = tls.clone();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        c
    });
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let fixed_name = match &key.tls.server_name {
        Some(name) => Some(
            ServerName::try_from(name.clone())
                .map_err(|_| ClientError::ServerName(name.clone()))?,
        ),
        None => None,
    };
    let https = match &fixed_name {
        Some(name) => https
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name.clone())),
        None => https,
    };
    let https = match key.protocol {
        UpstreamProtocol::Http1 => https.enable_http1().wrap_connector(http),
        UpstreamProtocol::Http2 => https.enable_http2().wrap_connector(http),
    };
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    if key.protocol == UpstreamProtocol::Http2 {
        b.http2_only(true);
    }
    let connect_timeout = Duration::from_millis(key.connect_ms);
    let h1 = (key.protocol == UpstreamProtocol::Http1).then(|| {
        let tls = tls_h1.map(|c| (tokio_rustls::TlsConnector::from(Arc::new(c)), fixed_name));
        Arc::new(H1Pool::new(tls, connect_timeout))
    });
    Ok(UpstreamClient {
        legacy: b.build(https),
        h1,
        tls: key.scheme == UpScheme::Https,
    })
}

/// `tls.verify: false`: accepts any certificate (for lab setups; documented as unsafe).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
