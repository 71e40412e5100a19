//! The real Claude Code captures in `../shared/claude-code/fixtures` (or `$CLAUDE_CODE_FIXTURES`),
//! indexed by their `manifest.json`. Shared by unit tests and the integration tests in `tests/`.
#![allow(dead_code)]
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Fixture {
    /// The fixtures directory the file is in (`fixtures/` or `fixtures-v332/`).
    pub root: PathBuf,
    /// Path relative to the fixtures directory, e.g. `grpc/tools-01-logs.pb`.
    pub file: String,
    /// Run name: tools, exhaust, error-cumulative, simple-gzip.
    pub run: String,
    /// grpc, http/protobuf, http/json.
    pub protocol: String,
    /// logs, metrics or traces.
    pub signal: String,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub counts: HashMap<String, u64>,
}

pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("CLAUDE_CODE_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/claude-code/fixtures"),
    }
}

/// The captures of Claude Code 2.1.332 (`../shared/claude-code/fixtures-v332`).
pub fn fixtures_v332_dir() -> PathBuf {
    fixtures_dir().join("../fixtures-v332")
}

pub fn fixture(file: &str) -> Vec<u8> {
    read(&fixtures_dir().join(file))
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

impl Fixture {
    /// The captured request body.
    pub fn body(&self) -> Vec<u8> {
        read(&self.root.join(&self.file))
    }
}

/// The 2.1.197 captures.
pub fn fixtures() -> Vec<Fixture> {
    manifest(fixtures_dir())
}

/// The 2.1.332 captures.
pub fn fixtures_v332() -> Vec<Fixture> {
    manifest(fixtures_v332_dir())
}

fn manifest(root: PathBuf) -> Vec<Fixture> {
    let manifest: serde_json::Value = serde_json::from_slice(&read(&root.join("manifest.json"))).expect("manifest.json is JSON");
    manifest
        .as_array()
        .expect("manifest.json is an array")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            Fixture {
                root: root.clone(),
                file: s("file"),
                run: s("name"),
                protocol: s("protocol"),
                signal: s("signal"),
                content_type: s("content_type"),
                content_encoding: e["content_encoding"].as_str().map(str::to_string),
                counts: serde_json::from_value(e["counts"].clone()).expect("counts are numbers"),
            }
        })
        .collect()
}

/// The fixtures of one run sent over one protocol, in export order.
pub fn run(run: &str, protocol: &str) -> Vec<Fixture> {
    fixtures().into_iter().filter(|f| f.run == run && f.protocol == protocol).collect()
}

/// The telemetry of one run of `../shared/claude-code/transcripts` (e.g. `subagent-2.1.332`,
/// `tools-repo-2.1.332`: subagents, repository attributes), in export order.
pub fn transcript_run(folder: &str) -> Vec<Fixture> {
    manifest(fixtures_dir().join("../transcripts").join(folder).join("otlp"))
}

/// The same for the 2.1.332 captures.
pub fn run_v332(run: &str, protocol: &str) -> Vec<Fixture> {
    fixtures_v332().into_iter().filter(|f| f.run == run && f.protocol == protocol).collect()
}

/// `../shared/claude-code/transcripts`: real transcripts with the telemetry of the same runs.
pub fn transcripts_dir() -> PathBuf {
    fixtures_dir().join("../transcripts")
}

/// Every `*.jsonl` under `dir`, sorted.
pub fn jsonl_files(dir: &std::path::Path) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}
