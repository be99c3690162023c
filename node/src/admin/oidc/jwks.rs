//! The identity provider's signing keys (a JWKS) for OIDC admin tokens: read from a file
//! (re-read when its mtime or size changes) or fetched from a URL and cached, so that
//! verifying a token never waits on the network unless its key is new.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::Algorithm;

/// Largest JWKS document accepted, from a file or over HTTP.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys kept from one document (providers publish a handful).
pub const MAX_KEYS: usize = 100;
/// How long a fetched set is used without `Cache-Control: max-age`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// A provider's `max-age` is clamped to this range: not a fetch per request, not forever.
pub const MIN_TTL: Duration = Duration::from_secs(60);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// One fetch (connect, answer and body) must finish within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Signature algorithms accepted from the provider. HMAC is never among them: a JWKS
/// holds public keys, and an HS* token "signed" with one would be forgeable by anyone.
pub const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Url(String),
}

/// Parses a JWKS document, keeping only public signature keys of accepted types. Entries
/// this node cannot use (encryption keys, `oct` secrets, unknown types) are skipped, so
/// one odd key does not take the provider's whole set down.
pub fn parse(bytes: &[u8]) -> Result<Vec<Jwk>, String> {
    #[derive(serde::Deserialize)]
    struct Raw {
        keys: Vec<serde_json::Value>,
    }
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    let raw: Raw = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JWKS document ({{\"keys\": [...]}}): {e}"))?;
    let keys: Vec<Jwk> = raw
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter(usable)
        .take(MAX_KEYS)
        .collect();
    if keys.is_empty() {
        return Err("it holds no RSA or EC (P-256, P-384) signature key".into());
    }
    Ok(keys)
}

fn usable(k: &Jwk) -> bool {
    let for_signing = matches!(
        k.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    let alg_ok = k
        .common
        .key_algorithm
        .is_none_or(|a| ALGORITHMS.iter().any(|b| alg_name(*b) == a.to_string()));
    let kind_ok = match &k.algorithm {
        AlgorithmParameters::RSA(_) => true,
        AlgorithmParameters::EllipticCurve(p) => {
            matches!(p.curve, EllipticCurve::P256 | EllipticCurve::P384)
        }
        _ => false,
    };
    for_signing && alg_ok && kind_ok
}

/// The JOSE name of an algorithm (`RS256`), as JWKs spell it.
pub fn alg_name(a: Algorithm) -> String {
    format!("{a:?}")
}

/// May `k` verify a token signed with `alg`? The key type and curve must match, and a
/// key that names its algorithm is used for that algorithm only.
pub fn fits(k: &Jwk, alg: Algorithm) -> bool {
    if let Some(ka) = k.common.key_algorithm {
        if ka.to_string() != alg_name(alg) {
            return false;
        }
    }
    use Algorithm::*;
    match (&k.algorithm, alg) {
        (AlgorithmParameters::RSA(_), RS256 | RS384 | RS512 | PS256 | PS384 | PS512) => true,
        (AlgorithmParameters::EllipticCurve(p), ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), ES384) => p.curve == EllipticCurve::P384,
        _ => false,
    }
}

struct State {
    keys: Arc<Vec<Jwk>>,
    /// File source: (mtime, size) of the file the keys were read from.
    stamp: Option<(SystemTime, u64)>,
    /// URL source: last successful fetch and the lifetime it was given.
    fetched_at: Option<Instant>,
    ttl: Duration,
    /// URL source: last fetch attempt, successful or not (rate limit).
    attempted_at: Option<Instant>,
}

/// The current key set and how to renew it. Shared by all requests of a node.
pub struct JwksCache {
    source: Source,
    http: reqwest::Client,
    /// Least time between two fetches (a token with an unknown `kid` cannot make the
    /// node hammer the provider).
    min_refetch: Duration,
    state: RwLock<State>,
    /// One fetch at a time; waiters then find the fresh set.
    fetching: tokio::sync::Mutex<()>,
}

fn stamp(path: &Path) -> std::io::Result<(SystemTime, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.modified()?, m.len()))
}

fn read_file(path: &Path) -> Result<Vec<Jwk>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    parse(&bytes)
}

/// The lifetime a `Cache-Control` header gives, clamped to [`MIN_TTL`]..=[`MAX_TTL`].
pub fn ttl_from(cache_control: Option<&str>) -> Duration {
    let Some(cc) = cache_control else {
        return DEFAULT_TTL;
    };
    let mut ttl = DEFAULT_TTL;
    for part in cc.split(',').map(str::trim) {
        let lower = part.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_TTL;
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            if let Ok(secs) = v.trim_matches('"').parse::<u64>() {
                ttl = Duration::from_secs(secs);
            }
        }
    }
    ttl.clamp(MIN_TTL, MAX_TTL)
}

impl JwksCache {
    /// A file source is read now (an unreadable or empty file is an error); a URL
    /// source starts empty and is fetched on first use (see [`JwksCache::refresh`]).
    pub fn open(source: Source, min_refetch: Duration) -> Result<JwksCache, String> {
        let mut state = State {
            keys: Arc::new(Vec::new()),
            stamp: None,
            fetched_at: None,
            ttl: DEFAULT_TTL,
            attempted_at: None,
        };
        if let Source::File(path) = &source {
            let s = stamp(path).map_err(|e| format!("cannot read it: {e}"))?;
            state.keys = Arc::new(read_file(path)?);
            state.stamp = Some(s);
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(JwksCache {
            source,
            http,
            min_refetch,
            state: RwLock::new(state),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The keys to verify with now. A file source is re-read first when the file changed;
    /// if the new content is unusable, the last good set stays in force.
    pub fn keys(&self) -> Arc<Vec<Jwk>> {
        if let Source::File(path) = &self.source {
            self.reload_file(path);
        }
        match self.state.read() {
            Ok(s) => s.keys.clone(),
            Err(poisoned) => poisoned.into_inner().keys.clone(),
        }
    }

    fn reload_file(&self, path: &Path) {
        let Ok(now) = stamp(path) else {
            return; // Gone for a moment (being replaced): keep the last set.
        };
        let unchanged = match self.state.read() {
            Ok(s) => s.stamp == Some(now),
            Err(poisoned) => poisoned.into_inner().stamp == Some(now),
        };
        if unchanged {
            return;
        }
        let mut s = match self.state.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if s.stamp == Some(now) {
            return;
        }
        // Recorded even on failure, so a bad file is reported once, not per request.
        s.stamp = Some(now);
        match read_file(path) {
            Ok(keys) => {
                tracing::info!(path = %path.display(), keys = keys.len(), "OIDC JWKS file reloaded");
                s.keys = Arc::new(keys);
            }
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "OIDC JWKS file unusable; keeping the previous keys"
            ),
        }
    }

    /// Would a fetch be useful for a token with key id `kid`: nothing fetched yet, the
    /// set expired, or `kid` unknown? Always false within `min_refetch` of the last try.
    fn wants_fetch(&self, kid: Option<&str>) -> bool {
        let s = match self.state.read() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if s.attempted_at
            .is_some_and(|t| t.elapsed() < self.min_refetch)
        {
            return false;
        }
        let expired = s.fetched_at.is_none_or(|t| t.elapsed() >= s.ttl);
        let unknown = kid.is_some_and(|kid| {
            !s.keys
                .iter()
                .any(|k| k.common.key_id.as_deref() == Some(kid))
        });
        expired || unknown
    }

    /// URL source: fetches the set when [`Self::wants_fetch`] says so. A failed fetch
    /// keeps the last good set. Does nothing for a file source.
    pub async fn refresh(&self, kid: Option<&str>) {
        let Source::Url(url) = &self.source else {
            return;
        };
        if !self.wants_fetch(kid) {
            return;
        }
        let _one = self.fetching.lock().await;
        if !self.wants_fetch(kid) {
            return; // Someone else fetched while we waited.
        }
        self.with_state(|s| s.attempted_at = Some(Instant::now()));
        match self.fetch(url).await {
            Ok((keys, ttl)) => {
                tracing::info!(
                    url = %url,
                    keys = keys.len(),
                    ttl_secs = ttl.as_secs(),
                    "OIDC JWKS fetched"
                );
                self.with_state(|s| {
                    s.keys = Arc::new(keys);
                    s.fetched_at = Some(Instant::now());
                    s.ttl = ttl;
                });
            }
            Err(e) => tracing::warn!(
                url = %url,
                error = %e,
                "OIDC JWKS fetch failed; keeping the previous keys"
            ),
        }
    }

    fn with_state(&self, f: impl FnOnce(&mut State)) {
        let mut s = match self.state.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut s);
    }

    async fn fetch(&self, url: &str) -> Result<(Vec<Jwk>, Duration), String> {
        let mut resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("the server answered {}", resp.status()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        let ttl = ttl_from(
            resp.headers()
                .get(reqwest::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((parse(&body)?, ttl))
    }
}
