//! The metrics endpoint itself: TLS with a rotated certificate, and the SDK API's rate-limit
//! counter. Its own test binary: the metrics registry is process-wide, and these managers
//! must not change the figures `tests/observability.rs` checks.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{api_server, free_addr, http_json, metric_value as value, scrape};
use opensandbox::http::lifecycle::ServerConfig;
use opensandbox::manager::{Manager, ManagerOptions};

const API_KEY: &str = "metrics-endpoint-key";

/// One HTTPS GET of `/metrics` trusting only the CA in `ca`.
fn https_metrics(addr: SocketAddr, ca: &std::path::Path) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // Some servers close without close_notify; what arrived is the answer.
        Err(_) if !out.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `--metrics-secure`: the metrics port speaks only TLS with the mounted certificate, and a
/// certificate rotated on disk (as cert-manager does) is served without a restart.
#[actix_rt::test]
async fn metrics_over_tls_follow_a_rotated_certificate() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics-tls");
    let dir = tempfile::tempdir().unwrap();
    let install = |n: &str| {
        std::fs::copy(
            fixtures.join(format!("{n}.crt")),
            dir.path().join("tls.crt"),
        )
        .unwrap();
        std::fs::copy(
            fixtures.join(format!("{n}.key")),
            dir.path().join("tls.key"),
        )
        .unwrap();
    };
    install("a");
    let s = api_server().await;
    let metrics = free_addr();
    let opts = ManagerOptions {
        identity: "tls".into(),
        metrics_addr: Some(metrics),
        metrics_tls: Some(opensandbox::http::metrics_tls::MetricsTls {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        }),
        ..ManagerOptions::default()
    };
    let _m = Manager::start(s.client(), &opts).await.unwrap();
    let get = |ca: &'static str| {
        let ca = fixtures.join(ca);
        tokio::task::spawn_blocking(move || https_metrics(metrics, &ca))
    };
    let body = get("ca-a.crt").await.unwrap().expect("scrape over TLS");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("opensandbox_leader"), "{body}");
    assert!(
        get("ca-b.crt").await.unwrap().is_err(),
        "only the served CA verifies"
    );
    // Plain HTTP on the TLS port gets no metrics.
    let plain = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut sock = std::net::TcpStream::connect(metrics).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut out = Vec::new();
        let _ = sock.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    assert!(!plain.contains("opensandbox_leader"), "{plain}");
    install("b");
    let body = get("ca-b.crt")
        .await
        .unwrap()
        .expect("the rotated certificate is served");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(get("ca-a.crt").await.unwrap().is_err());
}

/// Requests the SDK API's rate limit refuses are counted per route.
#[actix_rt::test]
async fn rate_limited_requests_are_counted() {
    let s = api_server().await;
    let (api, metrics) = (free_addr(), free_addr());
    let opts = ManagerOptions {
        identity: "limited".into(),
        metrics_addr: Some(metrics),
        api: Some((
            api,
            ServerConfig {
                api_key: Some(API_KEY.into()),
                rate_limit_per_second: 1,
                ..ServerConfig::default()
            },
        )),
        ..ManagerOptions::default()
    };
    let _m = Manager::start(s.client(), &opts).await.unwrap();
    let mut refused = 0;
    for _ in 0..10 {
        let (code, headers, body) = http_json(
            api,
            "GET",
            "/v1/sandboxes",
            &[("OPEN-SANDBOX-API-KEY", API_KEY)],
            None,
        )
        .await;
        if code == 429 {
            refused += 1;
            assert_eq!(body["code"], "RATE_LIMITED");
            assert!(headers.contains_key("retry-after"));
        }
    }
    assert!(refused > 0, "a limit of 1/s lets 10 quick requests through");
    let scrape = scrape(metrics).await;
    assert_eq!(
        value(
            &scrape,
            "opensandbox_api_rate_limited_total",
            &[("route", "/v1/sandboxes")]
        ),
        f64::from(refused)
    );
}
