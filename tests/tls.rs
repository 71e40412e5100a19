//! TLS and mTLS on both OTLP listeners, with certificates made here (rcgen): exports over TLS
//! are stored exactly; without a client certificate, with one from another CA or with a subject
//! not allowed they are refused, and health names why; a certificate replaced on disk is served
//! from the next connection on, without a restart. The real Claude Code CLI exporting over TLS
//! and mTLS is in `tests/claude_cli.rs`.
mod common;

use std::path::Path;
use std::sync::Arc;

use common::pki::{Ca, Pki};
use common::test_fixtures::{run, Fixture};
use common::Plugin;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FROM: i64 = 1_700_000_000;
const TO: i64 = 1_900_000_000;

fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().unwrap()
}

/// A TLS client trusting the server CA, with a client certificate when given.
fn connector(pki: &Pki, client: Option<(&str, &str)>, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(&pki.server_ca.pem()) {
        roots.add(c).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            builder.with_client_auth_cert(pem_certs(cert), PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A gRPC channel to `address` over TLS.
async fn grpc_channel(address: &str, connector: tokio_rustls::TlsConnector) -> tonic::transport::Channel {
    let address = address.to_string();
    tonic::transport::Endpoint::from_static("http://127.0.0.1")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let (address, connector) = (address.clone(), connector.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(&address).await?;
                let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .expect("gRPC over TLS")
}

/// Sends the fixtures over gRPC with TLS; the first refusal's status if any.
async fn export_grpc(plugin: &Plugin, connector: tokio_rustls::TlsConnector, fixtures: &[Fixture]) -> Result<(), String> {
    let address = plugin.grpc_addr.clone();
    let connect = tokio::spawn(async move { grpc_channel(&address, connector).await });
    let channel = connect.await.map_err(|e| format!("connect: {e}"))?;
    for f in fixtures {
        common::send_grpc(channel.clone(), f).await.map_err(|s| format!("{}: {}", s.code(), s.message()))?;
    }
    Ok(())
}

/// POSTs an OTLP/HTTP protobuf export over TLS; the response's status code.
async fn export_http(plugin: &Plugin, connector: tokio_rustls::TlsConnector, f: &Fixture) -> std::io::Result<u16> {
    let tcp = tokio::net::TcpStream::connect(&plugin.http_addr).await?;
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    let body = f.body();
    let head = format!(
        "POST /v1/{} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        f.signal,
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(&body).await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    Ok(text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
}

async fn start(pki: &Pki, mtls: bool, extra: &[(&str, &str)]) -> Plugin {
    let env = pki.env(mtls);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    Plugin::start_env(tempfile::tempdir().unwrap(), &all).await
}

async fn events(plugin: &Plugin) -> i64 {
    let r = plugin.query(json!({"queryType": "stat", "measure": "events"}), FROM, TO).await;
    r.frames[0].field("value").f64s()[0] as i64
}

/// The last TLS refusal health reports, if any.
fn tls_refusal(details: &Value) -> String {
    details["ingest"]["refusals"]["tls"]["last_message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn exports_over_tls_are_stored_and_health_shows_the_certificate() {
    let pki = Pki::new();
    let plugin = start(&pki, false, &[]).await;
    let tools = run("tools", "grpc");
    export_grpc(&plugin, connector(&pki, None, b"h2"), &tools).await.unwrap();
    assert_eq!(events(&plugin).await, 35);
    // OTLP/HTTP on the same certificate: another session's 35 events
    for f in &run("tools", "http/protobuf") {
        assert_eq!(export_http(&plugin, connector(&pki, None, b"http/1.1"), f).await.unwrap(), 200, "{}", f.file);
    }
    assert_eq!(events(&plugin).await, 70);
    // plaintext is not spoken
    let plain = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", plugin.grpc_addr)).unwrap().connect().await;
        match channel {
            Ok(c) => common::send_grpc(c, &tools[0]).await.is_err(),
            Err(_) => true,
        }
    })
    .await
    .unwrap();
    assert!(plain, "a plaintext export must fail");

    let health = plugin.check_health().await;
    assert!(health.message.contains("TLS: certificate CN=otlp.example, O=Example expires"), "{}", health.message);
    assert!(health.message.contains("client certificates not asked"), "{}", health.message);
    let details = plugin.health_details().await;
    let tls = &details["listeners"]["tls"];
    assert_eq!(tls["client_certificates"], "not asked");
    assert!((88..=90).contains(&tls["certificate_days_left"].as_i64().unwrap()), "{tls}");
    // the configuration page learns it through the endpoints resource
    let endpoints = plugin.call_resource("GET", "endpoints", &[], vec![]).await;
    let endpoints: Value = serde_json::from_slice(&endpoints.body).unwrap();
    assert_eq!(endpoints["tls"]["client_certificates"], "not asked");
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_client_ca() {
    let pki = Pki::new();
    let plugin = start(&pki, true, &[]).await;
    let tools = run("tools", "grpc");
    let (cert, key) =
        (std::fs::read_to_string(pki.path("client.pem")).unwrap(), std::fs::read_to_string(pki.path("client-key.pem")).unwrap());

    // no client certificate: refused, and health says why
    assert!(export_grpc(&plugin, connector(&pki, None, b"h2"), &tools).await.is_err());
    // a certificate from another CA: refused too
    assert!(tls_refusal(&plugin.health_details().await).contains("the client sent no certificate"));
    let (other_cert, other_key) = Ca::new("Someone else's CA").issue("laptop-42", 30);
    assert!(export_grpc(&plugin, connector(&pki, Some((&other_cert, &other_key)), b"h2"), &tools).await.is_err());
    let refusal = tls_refusal(&plugin.health_details().await);
    assert!(refusal.contains("not signed by the client CA"), "{refusal}");
    let http = export_http(&plugin, connector(&pki, None, b"http/1.1"), &run("simple-gzip", "http/protobuf")[0]).await;
    assert!(http.is_err() || http.as_ref().is_ok_and(|c| *c == 0), "{http:?}");
    assert_eq!(events(&plugin).await, 0, "nothing stored");
    let details = plugin.health_details().await;
    assert!(tls_refusal(&details).contains("the client sent no certificate"), "{details}");
    let health = plugin.check_health().await;
    assert!(health.message.contains("TLS refused"), "{}", health.message);
    assert!(health.message.contains("client certificates required"), "{}", health.message);

    // the client CA's certificate: stored exactly
    export_grpc(&plugin, connector(&pki, Some((&cert, &key)), b"h2"), &tools).await.unwrap();
    assert_eq!(events(&plugin).await, 35);
}

#[tokio::test]
async fn mtls_can_limit_the_client_subjects() {
    let pki = Pki::new();
    let plugin = start(&pki, true, &[("GF_PLUGIN_TLS_CLIENT_SUBJECTS", "ci-runner; laptop-7")]).await;
    let tools = run("tools", "grpc");
    let (cert, key) =
        (std::fs::read_to_string(pki.path("client.pem")).unwrap(), std::fs::read_to_string(pki.path("client-key.pem")).unwrap());
    // laptop-42 is signed by the client CA but not allowed
    assert!(export_grpc(&plugin, connector(&pki, Some((&cert, &key)), b"h2"), &tools).await.is_err());
    let refusal = tls_refusal(&plugin.health_details().await);
    assert!(refusal.contains("subject") && refusal.contains("laptop-42"), "{refusal}");
    // laptop-7 is, by common name; and a whole subject works too
    let (cert, key) = pki.client_ca.issue("laptop-7", 30);
    export_grpc(&plugin, connector(&pki, Some((&cert, &key)), b"h2"), &tools).await.unwrap();
    assert_eq!(events(&plugin).await, 35);
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
    let pki = Pki::new();
    let plugin = start(&pki, false, &[]).await;
    let served = |alpn: &'static [u8]| {
        let (connector, address) = (connector(&pki, None, alpn), plugin.grpc_addr.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
            let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
            let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
            x509_parser::parse_x509_certificate(cert.as_ref()).unwrap().1.subject().to_string()
        }
    };
    assert_eq!(served(b"h2").await, "CN=otlp.example, O=Example");
    let (cert, key) = pki.server_ca.issue("renewed.example", 365);
    pki.write("server-key.pem", &key);
    pki.write("server.pem", &cert);
    assert_eq!(served(b"h2").await, "CN=renewed.example, O=Example");
    let days = plugin.health_details().await["listeners"]["tls"]["certificate_days_left"].as_i64().unwrap();
    assert!((363..=365).contains(&days), "{days}");
    // a broken replacement keeps the last good certificate and says so
    pki.write("server.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    assert_eq!(served(b"h2").await, "CN=renewed.example, O=Example");
    let health = plugin.check_health().await;
    assert!(health.message.contains("the TLS files changed but do not load"), "{}", health.message);
}

/// Health once the store is open and both listeners have started or failed (each
/// reports on its own, so waiting for one says nothing about the other).
async fn settled_health(plugin: &Plugin) -> (String, Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let h = plugin.check_health().await;
        let details: Value = serde_json::from_slice(&h.json_details).unwrap_or(Value::Null);
        let settled = |listener: &str| details["listeners"][listener]["state"] != "starting";
        if details["store"].is_object() && settled("grpc") && settled("http") {
            return (h.message, details);
        }
        assert!(std::time::Instant::now() < deadline, "{}", h.message);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn half_a_tls_configuration_keeps_the_listeners_closed() {
    let pki = Pki::new();
    let cert = pki.path("server.pem").display().to_string();
    let plugin =
        Plugin::launch_env(tempfile::tempdir().unwrap(), "127.0.0.1:0", "127.0.0.1:0", &[("GF_PLUGIN_TLS_CERT_FILE", cert.as_str())]);
    let (message, details) = settled_health(&plugin).await;
    assert!(message.contains("TLS needs both tls_cert_file and tls_key_file"), "{message}");
    assert_eq!(
        (details["listeners"]["grpc"]["state"].as_str(), details["listeners"]["http"]["state"].as_str()),
        (Some("failed"), Some("failed"))
    );
    let missing = Path::new("/nonexistent/key.pem").display().to_string();
    let plugin = Plugin::launch_env(
        tempfile::tempdir().unwrap(),
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[("GF_PLUGIN_TLS_CERT_FILE", cert.as_str()), ("GF_PLUGIN_TLS_KEY_FILE", missing.as_str())],
    );
    let (message, details) = settled_health(&plugin).await;
    assert!(message.contains("/nonexistent/key.pem"), "{message}");
    assert_eq!(details["listeners"]["http"]["state"], "failed");
}
