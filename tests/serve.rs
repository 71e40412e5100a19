//! Standalone `serve` fails loudly: a store that cannot open or a listener that cannot bind ends
//! it with a non-zero exit and the real cause as the last line (plugin mode instead keeps
//! running and says it in CheckHealth); its log has colours only on a terminal.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn serve(args: &[&str], data_dir: &std::path::Path) -> std::process::Child {
    Command::new(common::binary())
        .arg("serve")
        .args(args)
        .env_remove("GF_PLUGIN_DATA_DIR")
        .env("RUST_LOG", "info")
        .current_dir(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve")
}

/// Waits for the process to end on its own; its exit status and the last line of its log.
fn ends_with(mut child: std::process::Child) -> (std::process::ExitStatus, String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    let last = log.lines().last().unwrap_or_default().to_string();
    (status, last, log)
}

#[test]
fn an_unusable_data_dir_ends_serve_with_the_cause() {
    let cwd = tempfile::tempdir().unwrap();
    let (grpc, http) = (common::free_address(), common::free_address());
    let (status, last, log) = ends_with(serve(&["--data-dir", "/proc/nope", "--grpc", &grpc, "--http", &http], cwd.path()));
    assert!(!status.success());
    assert!(last.starts_with("gpx_claudecode: cannot open the store: cannot create data directory /proc/nope"), "{last}");
    assert!(!log.contains('\u{1b}'), "no colour codes in a log that is not a terminal: {log}");
}

#[test]
fn a_listener_that_cannot_bind_ends_serve_with_the_cause() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let grpc = common::free_address();
    let (status, last, _) =
        ends_with(serve(&["--data-dir", data.to_str().unwrap(), "--grpc", &grpc, "--http", "127.0.0.1:99999"], cwd.path()));
    assert!(!status.success());
    assert!(last.starts_with("gpx_claudecode: OTLP/HTTP cannot listen on 127.0.0.1:99999"), "{last}");

    // a second serve on ports that are taken: "address in use", whatever else it would meet
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_address = busy.local_addr().unwrap().to_string();
    let (status, last, _) =
        ends_with(serve(&["--data-dir", data.to_str().unwrap(), "--grpc", &busy_address, "--http", &common::free_address()], cwd.path()));
    assert!(!status.success());
    assert!(last.contains(&format!("OTLP/gRPC cannot listen on {busy_address}")) && last.contains("in use"), "{last}");
}

#[test]
fn serve_runs_until_terminated() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");
    let (grpc, http) = (common::free_address(), common::free_address());
    let mut child = serve(&["--data-dir", data.to_str().unwrap(), "--grpc", &grpc, "--http", &http], cwd.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&http).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "serve ended");
        assert!(Instant::now() < deadline, "serve never listened on {http}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "serve keeps running");
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let (status, _, log) = ends_with(child);
    assert!(status.success(), "{log}");
    assert!(data.join("claudecode.duckdb").exists());
}
