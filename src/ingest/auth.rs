//! Optional bearer token on both OTLP listeners. Tokens come from `GF_PLUGIN_INGEST_TOKEN` and
//! from datasources' secure setting `ingestToken` (learned from Grafana's requests, which carry
//! the decrypted settings, and kept in the data directory so they hold after a restart). With no
//! token configured the listeners are open, as they bind to loopback by default.
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// File in the data directory holding the tokens learned from datasource settings.
const TOKENS_FILE: &str = "ingest-tokens.json";

#[derive(Debug, Default)]
pub struct IngestAuth {
    env_token: Option<String>,
    learned: RwLock<Vec<String>>,
    file: Option<PathBuf>,
}

impl IngestAuth {
    pub fn new(env_token: Option<String>, data_dir: Option<&Path>) -> IngestAuth {
        let file = data_dir.map(|d| d.join(TOKENS_FILE));
        let learned = file
            .as_deref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
            .unwrap_or_default();
        IngestAuth { env_token: env_token.filter(|t| !t.is_empty()), learned: RwLock::new(learned), file }
    }

    pub fn required(&self) -> bool {
        self.env_token.is_some() || self.learned.read().map(|l| !l.is_empty()).unwrap_or(true)
    }

    /// Remembers a datasource's token (a datasource may change it: the newest few are kept).
    pub fn learn(&self, token: &str) {
        if token.is_empty() {
            return;
        }
        let Ok(mut learned) = self.learned.write() else { return };
        if learned.iter().any(|t| t == token) {
            return;
        }
        learned.push(token.to_string());
        // several datasource instances may each have one; old ones age out
        if learned.len() > 16 {
            learned.remove(0);
        }
        if let Some(file) = &self.file {
            if let Err(e) = write_private(file, &serde_json::to_vec(&*learned).unwrap_or_default()) {
                tracing::warn!(error = %e, path = %file.display(), "cannot keep the ingest token for restarts");
            }
        }
    }

    /// Checks an `Authorization` header value; the error says why, without echoing the token.
    /// A percent-encoded value (`Bearer%20<token>`, the OTel spec's form for
    /// `OTEL_EXPORTER_OTLP_HEADERS`, which Claude Code decodes for gRPC but sends raw over HTTP)
    /// is decoded first.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), AuthError> {
        if !self.required() {
            return Ok(());
        }
        let Some(raw) = authorization else { return Err(AuthError::Missing) };
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        let value = decoded.trim();
        let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim) else {
            return Err(AuthError::Malformed);
        };
        let Ok(learned) = self.learned.read() else { return Err(AuthError::Invalid) };
        // compare against every token, so timing does not tell which (or whether one) matched
        let matched =
            self.env_token.iter().chain(learned.iter()).fold(false, |ok, t| constant_time_eq(t.as_bytes(), token.as_bytes()) | ok);
        if matched {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

/// Why a request's token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this receiver requires an ingest token: send Authorization: Bearer <token> (OTEL_EXPORTER_OTLP_HEADERS)")]
    Missing,
    #[error("Authorization must be \"Bearer <token>\"")]
    Malformed,
    #[error("invalid ingest token: it matches neither GF_PLUGIN_INGEST_TOKEN nor a datasource's ingest token")]
    Invalid,
}

/// Equal-length inputs take the same time whatever their content.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a file readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_learned_ones_survive_a_restart() {
        let open = IngestAuth::new(None, None);
        assert_eq!(open.check(None), Ok(()));
        let auth = IngestAuth::new(Some("s3cret".into()), None);
        assert!(auth.check(None).unwrap_err().to_string().contains("requires an ingest token"));
        assert_eq!(auth.check(Some("Basic abc")), Err(AuthError::Malformed));
        assert_eq!(auth.check(Some("Bearer wrong!")), Err(AuthError::Invalid));
        assert_eq!(auth.check(Some("Bearer s3cret")), Ok(()));
        assert_eq!(auth.check(Some("Bearer%20s3cret")), Ok(()), "percent-encoded, as OTEL_EXPORTER_OTLP_HEADERS allows");

        let dir = tempfile::tempdir().unwrap();
        let learned = IngestAuth::new(None, Some(dir.path()));
        learned.learn("from-datasource");
        assert_eq!(learned.check(Some("Bearer from-datasource")), Ok(()));
        let restarted = IngestAuth::new(None, Some(dir.path()));
        assert_eq!(restarted.check(Some("Bearer from-datasource")), Ok(()));
        assert!(restarted.check(None).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKENS_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "token file readable by others: {mode:o}");
        }
        assert!(!constant_time_eq(b"a", b"ab") && constant_time_eq(b"ab", b"ab"));
    }
}
