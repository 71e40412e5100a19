//! `gpx_claudecode import`: Claude Code's local transcripts into the store, so history from
//! before telemetry (and from developers without it) counts too. Files are parsed here; the calls
//! go straight into the DuckDB file when no process holds it, else through the running plugin's
//! or `serve`'s OTLP/HTTP receiver (`/v1/transcripts`), authenticated like an export.
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::ingest::transcript::{self, ImportOutcome, ImportRequest, ImportUser, SkippedLine, TranscriptCall};

/// Calls per request to the store or the receiver.
const CHUNK: usize = 2000;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  gpx_claudecode import
  gpx_claudecode import ~/.claude/projects/-home-me-src-app --user-email me@example.com --json")]
pub struct ImportArgs {
    /// Transcript files or directories [default: $CLAUDE_CONFIG_DIR/projects, else ~/.claude/projects]
    pub paths: Vec<PathBuf>,
    /// Data directory of the DuckDB file [env: GF_PLUGIN_DATA_DIR] [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The running receiver, used when another process holds the DuckDB file [default: the one
    /// the data directory names, else http://127.0.0.1:4318]
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Ingest token of the running receiver
    #[arg(long, env = "GF_PLUGIN_INGEST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The user the history belongs to (transcripts do not say) [default: userID of .claude.json]
    #[arg(long)]
    pub user_id: Option<String>,
    #[arg(long)]
    pub user_email: Option<String>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// What an import did, as printed at the end.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    pub files: usize,
    pub lines: usize,
    pub calls: usize,
    pub synthetic_lines: usize,
    #[serde(flatten)]
    pub stored: ImportOutcome,
    /// Where the calls went: the DuckDB file or the receiver's URL.
    pub into: String,
    pub skipped: Vec<SkippedLine>,
}

/// Every `*.jsonl` file under the paths (a path may be a file), sorted.
pub fn jsonl_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else {
            walk(p, &mut out).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Claude Code's configuration directory.
fn claude_config_dir() -> Option<PathBuf> {
    std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".claude")))
}

/// The `userID` Claude Code keeps in `.claude.json` (the telemetry's `user.id`).
fn claude_user_id(projects: &Path) -> Option<String> {
    let config = projects.parent()?;
    [config.join(".claude.json"), config.parent().map(|p| p.join(".claude.json")).unwrap_or_default()]
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .find_map(|v| v.get("userID").and_then(|u| u.as_str()).map(str::to_string))
}

/// Parses every file: calls deduplicated across files by (message id, request id), largest usage kept.
pub fn read_transcripts(files: &[PathBuf], progress: Option<&indicatif::ProgressBar>) -> (Vec<TranscriptCall>, Summary) {
    let mut summary = Summary { files: files.len(), ..Summary::default() };
    let mut calls: HashMap<(String, String), TranscriptCall> = HashMap::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read(f) {
            Ok(bytes) => {
                let parsed = transcript::parse(&name, &String::from_utf8_lossy(&bytes));
                summary.lines += parsed.lines;
                summary.synthetic_lines += parsed.synthetic;
                summary.skipped.extend(parsed.skipped);
                for c in parsed.calls {
                    let key = (c.message_id.clone(), c.request_id.clone());
                    match calls.get(&key) {
                        Some(kept) if kept.usage.total() >= c.usage.total() => {}
                        _ => {
                            calls.insert(key, c);
                        }
                    }
                }
            }
            Err(e) => summary.skipped.push(SkippedLine { file: name, line: 0, reason: format!("cannot read the file: {e}") }),
        }
        if let Some(p) = progress {
            p.inc(1);
        }
    }
    let mut calls: Vec<TranscriptCall> = calls.into_values().collect();
    calls.sort_by(|a, b| (a.time_us, &a.request_id).cmp(&(b.time_us, &b.request_id)));
    summary.calls = calls.len();
    (calls, summary)
}

pub async fn run(args: ImportArgs) -> Result<(), String> {
    let paths = if args.paths.is_empty() {
        vec![claude_config_dir().ok_or("no transcripts path given and neither CLAUDE_CONFIG_DIR nor HOME is set")?.join("projects")]
    } else {
        args.paths.clone()
    };
    let files = jsonl_files(&paths)?;
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let (calls, mut summary) = read_transcripts(&files, progress.as_ref());
    let user =
        ImportUser { id: args.user_id.clone().or_else(|| paths.iter().find_map(|p| claude_user_id(p))), email: args.user_email.clone() };
    if let Some(p) = &progress {
        p.set_message("storing");
    }
    let (into, stored) = deliver(&args, user, calls).await?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    summary.into = into;
    summary.stored = stored;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn print_summary(s: &Summary) {
    println!("{} files, {} lines: {} model calls", s.files, s.lines, s.calls);
    println!("  new: {}, already known: {}, replaced by a fuller copy: {}", s.stored.new, s.stored.known, s.stored.replaced);
    println!("  into {}", s.into);
    if s.synthetic_lines > 0 {
        println!("  {} API-error lines (no call was made) not counted", s.synthetic_lines);
    }
    if !s.stored.unpriced_models.is_empty() {
        println!("  no list price for {}: stored without cost (`gpx_claudecode prices update FILE`)", s.stored.unpriced_models.join(", "));
    }
    if !s.skipped.is_empty() {
        println!("{} lines skipped:", s.skipped.len());
        for l in &s.skipped {
            println!("  {}:{}: {}", l.file, l.line, l.reason);
        }
    }
}

fn add(total: &mut ImportOutcome, part: ImportOutcome) {
    total.new += part.new;
    total.known += part.known;
    total.replaced += part.replaced;
    total.unpriced_models.extend(part.unpriced_models);
    total.unpriced_models.sort();
    total.unpriced_models.dedup();
}

/// Stores the calls in the DuckDB file, or through the running receiver when another process
/// holds the file. Returns where they went and what was new.
async fn deliver(args: &ImportArgs, user: ImportUser, calls: Vec<TranscriptCall>) -> Result<(String, ImportOutcome), String> {
    let config = crate::config::Config::standalone(args.data_dir.clone(), None, None);
    let dir = config.data_dir.clone().unwrap_or_else(|_| std::path::PathBuf::from("data"));
    let store_dir = dir.as_path();
    let state = crate::app::AppState::new(config);
    let mut total = ImportOutcome::default();
    match state.store.open().await {
        Ok(store) => {
            let into = store.path().display().to_string();
            for chunk in calls.chunks(CHUNK) {
                let request = ImportRequest { user: user.clone(), calls: chunk.to_vec() };
                let part = state.ingest.import(request).await.map_err(|e| e.to_string());
                if part.is_err() {
                    state.store.close().await;
                }
                add(&mut total, part?);
            }
            state.store.close().await;
            Ok((into, total))
        }
        Err(e) if e.is_lock_conflict() => {
            let endpoint =
                args.endpoint.clone().or_else(|| crate::api::discover(store_dir)).unwrap_or_else(|| "http://127.0.0.1:4318".into());
            let url = format!("{}{}", endpoint.trim_end_matches('/'), crate::ingest::http::TRANSCRIPTS_PATH);
            let client = reqwest::Client::new();
            for chunk in calls.chunks(CHUNK) {
                let body = serde_json::to_vec(&ImportRequest { user: user.clone(), calls: chunk.to_vec() }).map_err(|e| e.to_string())?;
                let mut request = client.post(&url).header("content-type", "application/json").body(body);
                if let Some(token) = &args.token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.map_err(|e| {
                    format!("another process holds the DuckDB file, and its receiver at {url} did not answer ({e}): pass its --endpoint")
                })?;
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if !status.is_success() {
                    let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
                        " (pass the ingest token: --token or GF_PLUGIN_INGEST_TOKEN)"
                    } else {
                        ""
                    };
                    return Err(format!("{url} answered {status}: {text}{hint}"));
                }
                add(&mut total, serde_json::from_str(&text).map_err(|e| format!("{url} answered {text:?}: {e}"))?);
            }
            Ok((url, total))
        }
        Err(e) => Err(format!("cannot open the store: {e}")),
    }
}
