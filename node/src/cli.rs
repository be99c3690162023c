//! Command-line definitions (clap). Execution lives in `client` (admin subcommands) and
//! `server` (`serve`, `dev`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{ConfigError, NodeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "raftgate",
    version,
    about = "Raft-replicated API and LLM gateway"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a gateway node (boxed: its many flags dwarf the other commands).
    Serve(Box<ServeArgs>),
    /// Run a one-node playground with demo data in ./.raftgate-dev.
    Dev(DevArgs),
    /// Cluster membership: init, join, leave, remove, status.
    Cluster {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// List resources of a collection, or show one.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        collection: String,
        id: Option<String>,
        /// Linearizable read (confirmed with the leader).
        #[arg(long)]
        consistent: bool,
    },
    /// Create a resource from JSON.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        collection: String,
        #[command(flatten)]
        body: BodyArgs,
    },
    /// Replace a resource with JSON.
    Update {
        #[command(flatten)]
        client: ClientArgs,
        collection: String,
        id: String,
        #[command(flatten)]
        body: BodyArgs,
    },
    /// Delete a resource.
    Delete {
        #[command(flatten)]
        client: ClientArgs,
        collection: String,
        id: String,
    },
    /// API keys of consumers.
    Key {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Cluster-wide quota usage (filters combine).
    Usage {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        policy: Option<String>,
        #[arg(long)]
        api_key: Option<String>,
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        route: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// current, previous or all.
        #[arg(long, default_value = "all")]
        window: String,
        #[arg(long)]
        json: bool,
    },
    /// Search call logs of every node, newest first (filters combine).
    Logs {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long)]
        route: Option<String>,
        #[arg(long)]
        model: Option<String>,
        /// Status class: 2xx, 3xx, 4xx or 5xx.
        #[arg(long)]
        status: Option<String>,
        /// Only calls at least this slow, in ms.
        #[arg(long)]
        min_latency_ms: Option<u64>,
        /// Only calls of the last DURATION: e.g. 30s, 15m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// Records per page (1..=1000; the server's default is 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue after a previous page (its `next_cursor`).
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The admin audit trail, newest first (filters combine).
    Audit {
        #[command(flatten)]
        client: ClientArgs,
        /// Only records of the last DURATION: e.g. 30s, 15m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// Only records older than DURATION ago.
        #[arg(long)]
        until: Option<String>,
        /// Only writes by this token subject.
        #[arg(long)]
        actor: Option<String>,
        /// Only this kind of resource (e.g. consumers).
        #[arg(long)]
        kind: Option<String>,
        /// Records to show (1..=1000; the server's default is 100).
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Live view of the last minute's traffic per route (or model, …), from every node.
    Top {
        #[command(flatten)]
        client: ClientArgs,
        /// route, model, consumer, tenant or provider.
        #[arg(long, default_value = "route")]
        by: String,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Print one frame and exit.
        #[arg(long)]
        once: bool,
    },
    /// Admin tokens.
    Token {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Generate a cluster CA and node certificates for mutual TLS (docs/security.md).
    Certs(CertsArgs),
    /// Secrets at rest: re-encrypt them under the current key, or count them by key.
    Secrets {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Save a consistent backup of the replicated state to a file (admin token).
    Backup {
        #[command(flatten)]
        client: ClientArgs,
        /// The backup file to write (atomically: temporary file, fsync, rename).
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace the cluster's replicated state with a backup file (admin token).
    Restore {
        #[command(flatten)]
        client: ClientArgs,
        /// The backup file made by `raftgate backup`.
        #[arg(long)]
        from: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Bootstrap a one-node cluster on the node at --server; prints the first admin token.
    Init,
    /// Make the node at --server join the cluster of the node at --via.
    Join {
        #[arg(long)]
        via: String,
        /// Join as a non-voting learner (adds serving capacity without slowing commits).
        #[arg(long)]
        learner: bool,
    },
    /// Remove the node at --server from its cluster.
    Leave,
    /// Remove a node by id.
    Remove { node_id: u64 },
    /// Show members, roles, terms and log positions.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypt every stored secret under the current key (admin), in one Raft entry.
    Rotate {
        /// Only count what would be re-encrypted.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Count stored secrets by the key that encrypts them (admin).
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a consumer; the secret is printed once.
    Create {
        consumer: String,
        #[arg(long, default_value = "")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint an admin token.
    Create {
        #[arg(long)]
        role: String,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
    /// Revoke an admin token on every node (admin; any token may revoke itself).
    Revoke {
        /// The token id (`jti`) to revoke.
        #[arg(long, conflicts_with_all = ["target", "own"])]
        jti: Option<String>,
        /// With --jti: the token's expiry (Unix seconds), if known.
        #[arg(long, requires = "jti")]
        exp: Option<u64>,
        /// A whole token to revoke (its id and expiry are read from it).
        #[arg(long, conflicts_with = "own")]
        target: Option<String>,
        /// Revoke the token this command authenticates with (--token).
        #[arg(long = "self")]
        own: bool,
    },
    /// List revoked tokens (admin).
    Revoked {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Admin URL of any node.
    #[arg(
        long,
        env = "RAFTGATE_SERVER",
        default_value = "http://127.0.0.1:9080",
        global = true
    )]
    pub server: String,
    /// Admin bearer token.
    #[arg(long, env = "RAFTGATE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// --server, e.g. the cluster's ca.pem.
    #[arg(long, env = "RAFTGATE_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BodyArgs {
    /// Read the JSON body from a file (`-` for stdin).
    #[arg(short = 'f', long = "file", conflicts_with = "data")]
    pub file: Option<PathBuf>,
    /// The JSON body inline.
    #[arg(long)]
    pub data: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "RAFTGATE_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "RAFTGATE_NODE_ID")]
    pub node_id: Option<u64>,
    #[arg(long, env = "RAFTGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, env = "RAFTGATE_HTTP_ADDR")]
    pub http_addr: Option<String>,
    #[arg(long, env = "RAFTGATE_ADMIN_ADDR")]
    pub admin_addr: Option<String>,
    #[arg(long, env = "RAFTGATE_RAFT_ADDR")]
    pub raft_addr: Option<String>,
    /// Data-plane TLS listener (off unless set).
    #[arg(long, env = "RAFTGATE_HTTPS_ADDR")]
    pub https_addr: Option<String>,
    /// Data-plane access log: `-` for stdout or a file path.
    #[arg(long, env = "RAFTGATE_ACCESS_LOG")]
    pub access_log: Option<String>,
    /// Rotate a file access log before it passes this many bytes (default 100 MiB).
    #[arg(long, env = "RAFTGATE_ACCESS_LOG_MAX_BYTES")]
    pub access_log_max_bytes: Option<u64>,
    /// Rotated access log files kept, `.1` … `.N` (default 5).
    #[arg(long, env = "RAFTGATE_ACCESS_LOG_KEEP")]
    pub access_log_keep: Option<u32>,
    /// OTLP/HTTP collector URL, e.g. http://collector:4318 (trace export off unless set).
    #[arg(long, env = "RAFTGATE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans (default raftgate).
    #[arg(long, env = "RAFTGATE_OTLP_SERVICE_NAME")]
    pub otlp_service_name: Option<String>,
    /// Share of new traces exported, 0.0..=1.0 (default 1.0).
    #[arg(long, env = "RAFTGATE_OTLP_SAMPLE_RATIO")]
    pub otlp_sample_ratio: Option<f64>,
    #[arg(long, env = "RAFTGATE_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// Admin URL of a member to join on first start (uses RAFTGATE_TOKEN).
    #[arg(long, env = "RAFTGATE_JOIN")]
    pub join: Option<String>,
    #[arg(long, env = "RAFTGATE_SNAPSHOT_LOGS")]
    pub snapshot_logs: Option<u64>,
    #[arg(long, env = "RAFTGATE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// File with the 32-byte key that encrypts secrets in the Raft log (same on every node).
    #[arg(long, env = "RAFTGATE_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// A previous secret key file, still used to decrypt (repeat, or comma-separate in the
    /// environment variable); see `raftgate secrets rotate`.
    #[arg(
        long = "secret-key-previous-file",
        env = "RAFTGATE_SECRET_KEY_PREVIOUS_FILES",
        value_delimiter = ','
    )]
    pub secret_key_previous_files: Vec<PathBuf>,
    /// Token used by --join.
    #[arg(long, env = "RAFTGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Cluster CA (PEM) for mutual TLS between nodes; with --tls-cert and --tls-key.
    #[arg(long, env = "RAFTGATE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM), signed by the cluster CA.
    #[arg(long, env = "RAFTGATE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "RAFTGATE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Shared cluster secret required to add members; --join presents it.
    #[arg(long, env = "RAFTGATE_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// Start a one-node cluster if the data dir has none (admin token to DATA_DIR/admin-token).
    #[arg(long, env = "RAFTGATE_BOOTSTRAP")]
    pub bootstrap: bool,
    /// Run without mutual TLS and a join token (plain text; private test networks only).
    #[arg(long, env = "RAFTGATE_INSECURE")]
    pub insecure: bool,
    /// Node-local call log on (true, default) or off.
    #[arg(long, env = "RAFTGATE_CALL_LOG")]
    pub call_log: Option<bool>,
    /// Delete call log records older than this many seconds (default 7 days).
    #[arg(long, env = "RAFTGATE_CALL_LOG_MAX_AGE_SECS")]
    pub call_log_max_age_secs: Option<u64>,
    /// Keep at most this many bytes of call log records (default 1 GiB).
    #[arg(long, env = "RAFTGATE_CALL_LOG_MAX_BYTES")]
    pub call_log_max_bytes: Option<u64>,
    /// Hostile-input limits over the config's `[limits]` table.
    #[command(flatten)]
    pub limits: crate::shield::LimitArgs,
    /// Accept admin tokens from this OIDC issuer (`iss`); see docs/admin-api.md "OIDC".
    #[arg(long, env = "RAFTGATE_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Required `aud` of OIDC tokens.
    #[arg(long, env = "RAFTGATE_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The provider's JWKS URL (or --oidc-jwks-file).
    #[arg(long, env = "RAFTGATE_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
    /// A JWKS file, re-read when it changes (or --oidc-jwks-url).
    #[arg(long, env = "RAFTGATE_OIDC_JWKS_FILE")]
    pub oidc_jwks_file: Option<PathBuf>,
    /// Claim with the raftgate role (default raftgate_role).
    #[arg(long, env = "RAFTGATE_OIDC_ROLE_CLAIM")]
    pub oidc_role_claim: Option<String>,
    /// Claim with a tenant-admin's tenant (default raftgate_tenant).
    #[arg(long, env = "RAFTGATE_OIDC_TENANT_CLAIM")]
    pub oidc_tenant_claim: Option<String>,
    /// Claim used as the subject (default sub).
    #[arg(long, env = "RAFTGATE_OIDC_SUBJECT_CLAIM")]
    pub oidc_subject_claim: Option<String>,
    /// Least seconds between two JWKS fetches (default 30).
    #[arg(long, env = "RAFTGATE_OIDC_JWKS_MIN_REFETCH_SECS")]
    pub oidc_jwks_min_refetch_secs: Option<u64>,
}

impl ServeArgs {
    /// File (if any) → defaults, then flags and environment on top, then `validate()`.
    pub fn resolve(&self) -> Result<NodeConfig, ConfigError> {
        let mut c = match &self.config {
            Some(path) => NodeConfig::from_file(path)?,
            None => NodeConfig::default(),
        };
        macro_rules! over {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { c.$field = v.clone(); } )* };
        }
        over!(
            node_id,
            data_dir,
            http_addr,
            admin_addr,
            raft_addr,
            snapshot_logs,
            log_level,
            call_log,
            call_log_max_age_secs,
            call_log_max_bytes,
            access_log_max_bytes,
            access_log_keep,
            otlp_service_name,
            otlp_sample_ratio
        );
        if self.otlp_endpoint.is_some() {
            c.otlp_endpoint = self.otlp_endpoint.clone();
        }
        if self.advertise_host.is_some() {
            c.advertise_host = self.advertise_host.clone();
        }
        if self.join.is_some() {
            c.join = self.join.clone();
        }
        if self.https_addr.is_some() {
            c.https_addr = self.https_addr.clone();
        }
        if self.access_log.is_some() {
            c.access_log = self.access_log.clone();
        }
        if self.secret_key_file.is_some() {
            c.secret_key_file = self.secret_key_file.clone();
        }
        if !self.secret_key_previous_files.is_empty() {
            c.secret_key_previous_files = self.secret_key_previous_files.clone();
        }
        for (field, flag) in [
            (&mut c.tls_ca, &self.tls_ca),
            (&mut c.tls_cert, &self.tls_cert),
            (&mut c.tls_key, &self.tls_key),
        ] {
            if flag.is_some() {
                field.clone_from(flag);
            }
        }
        if self.join_token.is_some() {
            c.join_token = self.join_token.clone();
        }
        c.bootstrap |= self.bootstrap;
        c.insecure |= self.insecure;
        over!(
            oidc_role_claim,
            oidc_tenant_claim,
            oidc_subject_claim,
            oidc_jwks_min_refetch_secs
        );
        for (field, flag) in [
            (&mut c.oidc_issuer, &self.oidc_issuer),
            (&mut c.oidc_audience, &self.oidc_audience),
            (&mut c.oidc_jwks_url, &self.oidc_jwks_url),
        ] {
            if flag.is_some() {
                field.clone_from(flag);
            }
        }
        if self.oidc_jwks_file.is_some() {
            c.oidc_jwks_file = self.oidc_jwks_file.clone();
        }
        self.limits.apply(&mut c.limits);
        c.validate()?;
        c.check_transport_policy()?;
        Ok(c)
    }
}

/// `raftgate certs`: see `crate::certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory for ca.pem, ca-key.pem and NAME.pem / NAME-key.pem. An existing
    /// ca.pem + ca-key.pem there is reused, so nodes can be added or re-issued later.
    #[arg(long)]
    pub out: PathBuf,
    /// A node certificate: NAME=HOST[,HOST...] (DNS names or IPs it is reached by).
    #[arg(long = "node", value_name = "NAME=HOSTS")]
    pub nodes: Vec<String>,
    /// Validity of node certificates, in days.
    #[arg(long, default_value_t = 825)]
    pub days: u32,
    /// Overwrite existing node files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[arg(long, default_value = ".raftgate-dev")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: String,
    #[arg(long, default_value = "127.0.0.1:9080")]
    pub admin_addr: String,
    #[arg(long, default_value = "127.0.0.1:7080")]
    pub raft_addr: String,
    /// Where the built-in demo echo upstream listens.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub echo_addr: String,
    /// Start from an empty data dir.
    #[arg(long)]
    pub reset: bool,
    /// Hostile-input limits, as for `serve` (scripts/schemathesis.sh lifts the
    /// failed-authentication budget, which a fuzzer's bad tokens would exhaust).
    #[command(flatten)]
    pub limits: crate::shield::LimitArgs,
}
