//! Certificates made for the TLS tests (rcgen): a server CA and a client CA, a server
//! certificate for 127.0.0.1 and localhost, a client certificate, written as PEM files.
#![allow(dead_code)]
use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// A certificate authority that signs the others.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        Ca { cert: params.self_signed(&key).unwrap(), key }
    }

    /// A leaf certificate for `127.0.0.1` and `localhost` (server) with common name `name`.
    pub fn issue(&self, name: &str, days: i64) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, "Example");
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// Server and client certificates in a directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub server_ca: Ca,
    pub client_ca: Ca,
}

impl Pki {
    pub fn new() -> Pki {
        let pki = Pki { dir: tempfile::tempdir().unwrap(), server_ca: Ca::new("Test server CA"), client_ca: Ca::new("Test client CA") };
        let (cert, key) = pki.server_ca.issue("otlp.example", 90);
        pki.write("server.pem", &cert);
        pki.write("server-key.pem", &key);
        pki.write("server-ca.pem", &pki.server_ca.pem());
        pki.write("client-ca.pem", &pki.client_ca.pem());
        let (cert, key) = pki.client_ca.issue("laptop-42", 30);
        pki.write("client.pem", &cert);
        pki.write("client-key.pem", &key);
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, pem: &str) {
        std::fs::write(self.path(name), pem).unwrap();
    }

    /// The plugin's settings: TLS, and with `mtls` a mandatory client certificate.
    pub fn env(&self, mtls: bool) -> Vec<(String, String)> {
        let mut env = vec![
            ("GF_PLUGIN_TLS_CERT_FILE".to_string(), self.path("server.pem").display().to_string()),
            ("GF_PLUGIN_TLS_KEY_FILE".to_string(), self.path("server-key.pem").display().to_string()),
        ];
        if mtls {
            env.push(("GF_PLUGIN_TLS_CLIENT_CA_FILE".to_string(), self.path("client-ca.pem").display().to_string()));
        }
        env
    }
}
