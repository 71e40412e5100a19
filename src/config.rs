//! Process-wide settings. Grafana passes `[plugin.vibe-claudecode-datasource]` keys from
//! grafana.ini as `GF_PLUGIN_<KEY>` environment variables; standalone mode takes flags too.
use std::path::PathBuf;

pub const PLUGIN_ID: &str = "vibe-claudecode-datasource";
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:4317";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:4318";
/// Largest request body accepted, compressed or not (and after decompression).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the DuckDB file lives; an error says why none could be chosen.
    pub data_dir: Result<PathBuf, String>,
    pub grpc_listen: String,
    pub http_listen: String,
    /// Raw SQL queries: time limit and row cap (`GF_PLUGIN_QUERY_TIMEOUT_SECONDS`,
    /// `GF_PLUGIN_MAX_RESULT_ROWS`).
    pub query_limits: crate::query::raw::Limits,
    /// Bearer token both OTLP listeners require (`GF_PLUGIN_INGEST_TOKEN`); datasources' secure
    /// `ingestToken` settings add to it.
    pub ingest_token: Option<String>,
    /// Limits of an export request, and how long and how much of them is held waiting.
    pub ingest: crate::ingest::IngestSettings,
    /// How long queries and health checks wait for the store while it opens or reopens
    /// (`GF_PLUGIN_STORE_WAIT_SECONDS`, the same wait as exports').
    pub store_wait: std::time::Duration,
    /// `GF_PLUGIN_RETENTION_DAYS`: days of data kept (overrides the datasources' setting).
    pub retention_days: Option<u32>,
    /// Time between retention passes (`GF_PLUGIN_RETENTION_INTERVAL_SECONDS`, default 1 h).
    pub retention_interval: std::time::Duration,
    /// `GF_PLUGIN_RETENTION_MAX_SIZE`: most bytes of data kept (overrides the datasources' setting).
    pub retention_max_bytes: Option<u64>,
    /// The DuckDB file's own settings (memory, checkpoints, free-disk floor).
    pub store: crate::store::StoreOptions,
    /// TLS on both OTLP listeners (`GF_PLUGIN_TLS_CERT_FILE`, `GF_PLUGIN_TLS_KEY_FILE`; mTLS with
    /// `GF_PLUGIN_TLS_CLIENT_CA_FILE` and optionally `GF_PLUGIN_TLS_CLIENT_SUBJECTS`, a
    /// `;`-separated list); `Err` when only half of it is set.
    pub tls: Result<Option<crate::ingest::tls::TlsSettings>, String>,
    /// The lowest Grafana role that reads content where a datasource does not say
    /// (`GF_PLUGIN_CONTENT_ROLE`, `serve --content-role`; default Admin). The local API's
    /// callers read as Viewers.
    pub content_role: crate::query::access::Role,
    /// Settings that were set but could not be used, logged at start-up.
    pub ignored: Vec<String>,
}

/// TLS settings from their four values; a key without its certificate (or the reverse) is an
/// error, so a listener never falls back to plaintext when TLS was meant.
pub fn tls_settings(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    client_subjects: Option<String>,
) -> Result<Option<crate::ingest::tls::TlsSettings>, String> {
    let client_subjects: Vec<String> =
        client_subjects.iter().flat_map(|s| s.split(';')).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    match (cert, key) {
        (Some(cert_file), Some(key_file)) => {
            if !client_subjects.is_empty() && client_ca.is_none() {
                return Err("TLS: client subjects are set but no client CA file (tls_client_ca_file) to check certificates with".into());
            }
            Ok(Some(crate::ingest::tls::TlsSettings { cert_file, key_file, client_ca_file: client_ca, client_subjects }))
        }
        (None, None) if client_ca.is_none() && client_subjects.is_empty() => Ok(None),
        _ => Err("TLS needs both tls_cert_file and tls_key_file (GF_PLUGIN_TLS_CERT_FILE, GF_PLUGIN_TLS_KEY_FILE); the OTLP listeners stay closed until both are set".into()),
    }
}

/// `GF_PLUGIN_CONTENT_ROLE`; a value that is not a role keeps the default (the strictest).
fn content_role(ignored: &mut Vec<String>) -> crate::query::access::Role {
    let default = crate::query::access::DEFAULT_CONTENT_ROLE;
    match env("GF_PLUGIN_CONTENT_ROLE").map(|v| crate::query::access::Role::parse_setting(&v)) {
        None => default,
        Some(Ok(role)) => role,
        Some(Err(e)) => {
            ignored.push(format!("GF_PLUGIN_CONTENT_ROLE {e}; content stays for {}s", default.name()));
            default
        }
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Settings as Grafana gives them to the plugin process.
    pub fn from_plugin_env() -> Config {
        let mut ignored = Vec::new();
        Config {
            data_dir: plugin_data_dir(),
            grpc_listen: env("GF_PLUGIN_OTLP_GRPC_LISTEN").unwrap_or_else(|| DEFAULT_GRPC_LISTEN.into()),
            http_listen: env("GF_PLUGIN_OTLP_HTTP_LISTEN").unwrap_or_else(|| DEFAULT_HTTP_LISTEN.into()),
            query_limits: query_limits(),
            ingest_token: env("GF_PLUGIN_INGEST_TOKEN"),
            tls: tls_settings(
                env("GF_PLUGIN_TLS_CERT_FILE").map(PathBuf::from),
                env("GF_PLUGIN_TLS_KEY_FILE").map(PathBuf::from),
                env("GF_PLUGIN_TLS_CLIENT_CA_FILE").map(PathBuf::from),
                env("GF_PLUGIN_TLS_CLIENT_SUBJECTS"),
            ),
            ingest: crate::ingest::IngestSettings {
                limits: ingest_limits(),
                max_body_bytes: max_body_bytes(),
                wait: store_wait(),
                hold_max_bytes: size("GF_PLUGIN_INGEST_HOLD_MAX", &mut ignored)
                    .and_then(|b| usize::try_from(b).ok())
                    .filter(|b| *b > 0)
                    .unwrap_or(crate::ingest::DEFAULT_HOLD_MAX_BYTES),
            },
            store_wait: store_wait(),
            content_role: content_role(&mut ignored),
            retention_days: env("GF_PLUGIN_RETENTION_DAYS").and_then(|v| v.trim().parse().ok()),
            retention_interval: std::time::Duration::from_secs(positive("GF_PLUGIN_RETENTION_INTERVAL_SECONDS").unwrap_or(3600) as u64),
            retention_max_bytes: size("GF_PLUGIN_RETENTION_MAX_SIZE", &mut ignored).filter(|b| *b > 0),
            store: crate::store::StoreOptions {
                memory_limit: env("GF_PLUGIN_MEMORY_LIMIT").unwrap_or_else(|| crate::store::DEFAULT_MEMORY_LIMIT.into()),
                checkpoint_threshold: env("GF_PLUGIN_CHECKPOINT_THRESHOLD")
                    .unwrap_or_else(|| crate::store::DEFAULT_CHECKPOINT_THRESHOLD.into()),
                min_free_disk_bytes: size("GF_PLUGIN_MIN_FREE_DISK", &mut ignored).unwrap_or(crate::store::DEFAULT_MIN_FREE_DISK_BYTES),
            },
            ignored,
        }
    }

    /// Standalone: flags win, then the same environment variables, then `./data` and the defaults.
    pub fn standalone(data_dir: Option<PathBuf>, grpc: Option<String>, http: Option<String>) -> Config {
        let env_cfg = Config::from_plugin_env();
        Config {
            data_dir: Ok(data_dir.or_else(|| env_cfg.data_dir.ok()).unwrap_or_else(|| PathBuf::from("data"))),
            grpc_listen: grpc.unwrap_or(env_cfg.grpc_listen),
            http_listen: http.unwrap_or(env_cfg.http_listen),
            query_limits: env_cfg.query_limits,
            ingest_token: env_cfg.ingest_token,
            tls: env_cfg.tls,
            ingest: env_cfg.ingest,
            store_wait: env_cfg.store_wait,
            content_role: env_cfg.content_role,
            retention_days: env_cfg.retention_days,
            retention_interval: env_cfg.retention_interval,
            retention_max_bytes: env_cfg.retention_max_bytes,
            store: env_cfg.store,
            ignored: env_cfg.ignored,
        }
    }
}

/// A byte size such as `10GB`, `512MiB` or `1000000` (bytes); a value that does not parse is
/// reported in `ignored` and the default applies.
fn size(key: &str, ignored: &mut Vec<String>) -> Option<u64> {
    let value = env(key)?;
    parse_size(key, &value).map_err(|e| ignored.push(e)).ok()
}

fn parse_size(key: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{key}={value:?} is not a size such as 10GB or 512MiB ({e})"))
}

fn positive(key: &str) -> Option<usize> {
    env(key).and_then(|v| v.parse().ok()).filter(|n| *n > 0)
}

fn ingest_limits() -> crate::ingest::limits::Limits {
    let d = crate::ingest::limits::Limits::default();
    crate::ingest::limits::Limits {
        records: positive("GF_PLUGIN_MAX_RECORDS_PER_REQUEST").unwrap_or(d.records),
        attributes: positive("GF_PLUGIN_MAX_ATTRIBUTES").unwrap_or(d.attributes),
        value_bytes: positive("GF_PLUGIN_MAX_ATTRIBUTE_VALUE_BYTES").unwrap_or(d.value_bytes),
    }
}

fn store_wait() -> std::time::Duration {
    env("GF_PLUGIN_STORE_WAIT_SECONDS")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s >= 0.0 && s.is_finite())
        .map(std::time::Duration::from_secs_f64)
        .unwrap_or(crate::ingest::DEFAULT_STORE_WAIT)
}

fn max_body_bytes() -> usize {
    env("GF_PLUGIN_MAX_BODY_BYTES").and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(DEFAULT_MAX_BODY_BYTES)
}

fn query_limits() -> crate::query::raw::Limits {
    let default = crate::query::raw::Limits::default();
    crate::query::raw::Limits {
        timeout: env("GF_PLUGIN_QUERY_TIMEOUT_SECONDS")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s > 0.0 && s.is_finite())
            .map(std::time::Duration::from_secs_f64)
            .unwrap_or(default.timeout),
        max_rows: env("GF_PLUGIN_MAX_RESULT_ROWS").and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default.max_rows),
    }
}

/// `GF_PLUGIN_DATA_DIR`, else `$GF_PATHS_DATA/<id>` (Grafana's Docker image), else
/// `$DATA_DIR/<id>` (deb/rpm units). Never the plugin directory or the working directory.
fn plugin_data_dir() -> Result<PathBuf, String> {
    if let Some(dir) = env("GF_PLUGIN_DATA_DIR") {
        return Ok(PathBuf::from(dir));
    }
    for var in ["GF_PATHS_DATA", "DATA_DIR"] {
        if let Some(dir) = env(var) {
            return Ok(PathBuf::from(dir).join(PLUGIN_ID));
        }
    }
    Err(format!("no data directory: set data_dir in grafana.ini [plugin.{PLUGIN_ID}] (GF_PLUGIN_DATA_DIR), or GF_PATHS_DATA"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_decimal_and_binary_units_and_bad_ones_say_why() {
        assert_eq!(parse_size("K", "10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("K", " 512MiB "), Ok(512 << 20));
        assert_eq!(parse_size("K", "1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("K", "4096"), Ok(4096));
        let e = parse_size("GF_PLUGIN_RETENTION_MAX_SIZE", "lots").unwrap_err();
        assert!(e.contains("GF_PLUGIN_RETENTION_MAX_SIZE=\"lots\" is not a size"), "{e}");
    }
}
