//! The benchmark runs end to end at smoke size (CI): every section is present and every query
//! answered. No timing is asserted; numbers belong in BENCHMARKS.md, not in tests.
use serde_json::Value;

#[test]
fn bench_smoke_run_reports_every_measure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json_path = dir.path().join("bench.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpx_claudecode"))
        .args(["bench", "--smoke", "--work-dir"])
        .arg(dir.path().join("work"))
        .arg("--json")
        .arg(&json_path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    for heading in ["## Targets", "## Ingest through the OTLP receiver", "## Start-up", "QueryData median ms"] {
        assert!(stdout.contains(heading), "missing {heading:?} in\n{stdout}");
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).expect("JSON written")).expect("JSON");
    // 3 protocols × 3 batch sizes × 2 client counts, each with its Appender limit
    let ingest = report["ingest"].as_array().expect("ingest rows");
    assert_eq!(ingest.len(), 18);
    assert!(ingest.iter().all(|r| r["events"].as_u64() >= Some(3000) && r["appender_events_per_s"].as_f64() > Some(0.0)));
    let dataset = &report["datasets"][0];
    assert!(dataset["events"].as_u64() >= Some(3000));
    let queries = dataset["queries"].as_array().expect("query rows");
    // every query type of the catalog and every panel of both dashboards
    assert_eq!(queries.len(), 34 + 22 + 11);
    for q in queries.iter().chain(dataset["dashboards"].as_array().expect("dashboards")) {
        assert!(q["error"].is_null(), "{q}");
        assert!(q["plugin_median_ms"].as_f64().is_some() && q["raw_median_ms"].as_f64().is_some(), "{q}");
    }
    assert!(dataset["ack_to_visible_median_ms"].as_f64().is_some());
    assert!(dataset["disk_bytes"].as_u64() > Some(0) && dataset["otlp_bytes"].as_u64() > Some(0));
    assert!(dataset["rss"]["query"].as_u64() > Some(0));
    assert_eq!(report["startup"].as_array().map(Vec::len), Some(2));
    assert!(report["targets"].as_array().map(Vec::len) >= Some(8));
}
