//! `gpx_claudecode bench`: ingest and query speed of the plugin as Grafana and Claude Code use
//! it (a plugin process, OTLP over loopback, QueryData over the plugin protocol), measured in the
//! same run against what DuckDB itself does with the same rows and the same SQL. Prints Markdown
//! tables and writes JSON; it never fails on a missed target, it reports it.
pub mod child;
pub mod generate;
pub mod load;
pub mod queries;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duckdb::Connection;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use serde_json::json;

use child::PluginProcess;
use generate::{Generator, Population};
use load::{Export, Protocol};
use queries::{NamedQuery, SampleIds, Timing};
use report::{DatasetReport, IngestRow, QueryRow, Report, StartupRow};

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  gpx_claudecode bench --json bench.json
  gpx_claudecode bench --sizes 10000000 --runs 3 --ingest-events 20000")]
pub struct BenchArgs {
    /// Dataset sizes (events) for the query benchmark, ascending
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub sizes: Vec<usize>,
    /// Events sent per ingest run (each protocol × batch size × client count)
    #[arg(long, default_value_t = 200_000)]
    pub ingest_events: usize,
    /// Timed runs per query (after one warm-up run)
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Tiny sizes that only show everything runs (CI): 3000 events, 2 runs
    #[arg(long)]
    pub smoke: bool,
    /// Seed of the generated telemetry
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the databases go (default: a new directory under the system temp dir, removed after)
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also write the results as JSON to this file
    #[arg(long)]
    pub json: Option<PathBuf>,
}

const BATCHES: [usize; 3] = [50, 512, 4096];
const CLIENTS: [usize; 2] = [1, 8];
/// Records per export while loading the query datasets.
const LOAD_BATCH: usize = 4096;
const LOAD_CLIENTS: usize = 4;

pub async fn run(mut args: BenchArgs) -> Result<(), String> {
    if args.smoke {
        args.sizes = vec![3000];
        args.ingest_events = 3000;
        args.runs = 2;
    }
    args.sizes.sort_unstable();
    args.runs = args.runs.max(1);
    let (work_dir, remove_after) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("gpx_claudecode-bench-{}", std::process::id())), true),
    };
    let _ = std::fs::remove_dir_all(&work_dir);
    std::fs::create_dir_all(&work_dir).map_err(|e| format!("creating {}: {e}", work_dir.display()))?;
    let result = run_in(&args, &work_dir).await;
    if remove_after {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    let report = result?;
    println!("{}", report.markdown());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

fn progress(message: impl AsRef<str>) {
    eprintln!("[bench] {}", message.as_ref());
}

async fn run_in(args: &BenchArgs, work_dir: &Path) -> Result<Report, String> {
    let mut report = Report::new(args);
    progress("start-up on an empty data directory");
    report.startup.push(startup(&work_dir.join("empty"), "empty file", 3).await?);
    progress("ingest matrix");
    report.ingest = ingest_matrix(args, &work_dir.join("ingest"), &mut report.rss_ingest_matrix).await?;
    let dataset_dir = work_dir.join("dataset");
    let mut generator = Generator::new(Population { seed: args.seed, ..Population::default() });
    let mut plugin = PluginProcess::start(&dataset_dir).await?;
    let mut loaded = Loaded::default();
    for (i, &size) in args.sizes.iter().enumerate() {
        progress(format!("loading {size} events"));
        plugin.rss.phase("ingest");
        let load = load_dataset(&plugin, &mut generator, size.saturating_sub(loaded.events), &mut loaded).await?;
        let mut dataset = DatasetReport::new(&loaded, load);
        dataset.rollup_settle_ms = Some(rollups_settled(&plugin).await?.as_secs_f64() * 1000.0);
        plugin.rss.phase("idle");
        // Queries run on the file as a restart leaves it (checkpointed), the state the raw SQL
        // below reads; right after loading, up to a checkpoint threshold of rows is still WAL.
        let ingest_rss = plugin.rss.peaks();
        dataset.shutdown_ms = Some(plugin.stop()?.as_secs_f64() * 1000.0);
        dataset.measure_disk(&dataset_dir.join(crate::store::DB_FILE));
        plugin = PluginProcess::start(&dataset_dir).await?;
        progress(format!("queries through QueryData at {size} events"));
        plugin.rss.phase("query");
        let (start_ms, end_ms) = data_range();
        let sets = query_sets(&loaded.ids)?;
        for q in sets.all() {
            let t = time_plugin_query(&plugin, &q.json, start_ms, end_ms, args.runs).await;
            dataset.queries.push(QueryRow::new(&q, "30 d", t));
        }
        let day_ms = 86_400_000;
        for (name, panels, from, role) in [
            ("overview dashboard, 30 d", &sets.overview, start_ms, "Admin"),
            ("overview dashboard, last 24 h", &sets.overview, end_ms - day_ms, "Admin"),
            ("sessions dashboard, 30 d", &sets.sessions, start_ms, "Admin"),
            // content hidden: the same panels over the masked views
            ("sessions dashboard as a Viewer, 30 d", &sets.sessions, start_ms, "Viewer"),
        ] {
            let t = time_dashboard(&plugin, role, panels, from, end_ms, args.runs).await;
            dataset.dashboards.push(QueryRow::dashboard(name, t));
        }
        plugin.rss.phase("idle");
        progress("ack → visible");
        let ack = ack_to_visible(&plugin, args.seed, args.runs).await?;
        (dataset.ack_to_visible_median_ms, dataset.ack_to_visible_p95_ms) = (ack.median(), ack.p95());
        dataset.rss = ingest_rss;
        for (phase, peak) in plugin.rss.peaks() {
            let entry = dataset.rss.entry(phase).or_default();
            *entry = (*entry).max(peak);
        }
        plugin.stop()?;
        progress(format!("the same SQL straight in DuckDB at {size} events"));
        raw_comparison(&dataset_dir.join(crate::store::DB_FILE), &sets, args.runs, &mut dataset)?;
        progress(format!("start-up on the {size}-event file"));
        report.startup.push(startup(&dataset_dir, &format!("{size} events"), 3).await?);
        report.datasets.push(dataset);
        if i + 1 == args.sizes.len() {
            break;
        }
        plugin = PluginProcess::start(&dataset_dir).await?;
    }
    report.evaluate_targets();
    Ok(report)
}

/// Waits until health reports no rollup hour left to rebuild (the writer rebuilds them once
/// loading has gone quiet); how long that took.
async fn rollups_settled(plugin: &PluginProcess) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let health = plugin.check_health().await?;
        let details: serde_json::Value = serde_json::from_slice(&health.json_details).map_err(|e| format!("health details: {e}"))?;
        if details["store"]["rollup_dirty_hours"].as_i64() == Some(0) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(format!("rollups still not rebuilt after 30 min: {}", details["store"]));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Process start to handshake and to ready, median of `n` starts.
async fn startup(dir: &Path, label: &str, n: usize) -> Result<StartupRow, String> {
    let (mut handshake, mut ready) = (Timing::default(), Timing::default());
    for _ in 0..n {
        let p = PluginProcess::start(dir).await?;
        handshake.push(p.handshake);
        ready.push(p.ready);
        p.stop()?;
    }
    Ok(StartupRow { file: label.to_string(), handshake_ms: handshake.median(), ready_ms: ready.median() })
}

/// Every protocol × batch size × client count into one plugin, and the Appender limit per batch size.
async fn ingest_matrix(args: &BenchArgs, dir: &Path, rss: &mut std::collections::BTreeMap<String, u64>) -> Result<Vec<IngestRow>, String> {
    let plugin = PluginProcess::start(dir).await?;
    let mut generator = Generator::new(Population { seed: args.seed ^ 0x1e57, ..Population::default() });
    let mut rows = Vec::new();
    for batch in BATCHES {
        // the limit: the same rows appended straight to a DuckDB file, one commit per batch
        let sessions = generator.sessions_with_events(args.ingest_events);
        let requests = load::log_batches(&sessions, batch);
        let limit_dir = dir.join(format!("limit-{batch}"));
        let reqs = requests.clone();
        let limit = tokio::task::spawn_blocking(move || appender_limit(&reqs, &limit_dir)).await.map_err(|e| e.to_string())??;
        for protocol in Protocol::ALL {
            for clients in CLIENTS {
                // fresh records for every run, so nothing is a repeat of what is stored
                let sessions = generator.sessions_with_events(args.ingest_events);
                let exports =
                    load::log_batches(&sessions, batch).iter().map(|r| load::encode_logs(r, protocol)).collect::<Result<Vec<_>, _>>()?;
                let events: usize = exports.iter().map(|e| e.records).sum();
                let bytes: usize = exports.iter().map(|e| e.body.len()).sum();
                plugin.rss.phase("ingest");
                let took = load::send_all(protocol, &plugin.grpc_addr, &plugin.http_addr, Arc::new(exports), clients).await?;
                plugin.rss.phase("idle");
                let row = IngestRow::new(protocol.name(), batch, clients, events, bytes, took, limit);
                progress(format!(
                    "  {:<13} batch {:>4} × {} clients: {:>9.0} events/s ({:.0} % of the Appender)",
                    row.protocol,
                    batch,
                    clients,
                    row.events_per_s,
                    row.ratio * 100.0
                ));
                rows.push(row);
            }
        }
    }
    *rss = plugin.rss.peaks();
    plugin.stop()?;
    Ok(rows)
}

/// Events per second DuckDB's Appender takes the same rows at: Arrow record batches built before
/// the clock starts, one commit per request as the receiver acknowledges, the store's settings.
fn appender_limit(requests: &[ExportLogsServiceRequest], dir: &Path) -> Result<f64, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let config =
        duckdb::Config::default().with("checkpoint_threshold", crate::store::DEFAULT_CHECKPOINT_THRESHOLD).map_err(|e| e.to_string())?;
    let mut conn = Connection::open_with_flags(dir.join("limit.duckdb"), config).map_err(|e| e.to_string())?;
    for m in crate::store::schema::migrations() {
        conn.execute_batch(&m).map_err(|e| e.to_string())?;
    }
    let layout = crate::store::columnar::TableLayout::read(&conn, "events").map_err(|e| e.to_string())?;
    let now = chrono::Utc::now().timestamp_micros();
    let batches = requests
        .iter()
        .map(|r| {
            let rows = crate::ingest::flatten::logs(r, now).events;
            layout.batch(rows.iter())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let events: usize = batches.iter().map(|b| b.num_rows()).sum();
    let started = Instant::now();
    for batch in batches {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        {
            let mut appender = tx.appender("events").map_err(|e| e.to_string())?;
            appender.append_record_batch(batch).map_err(|e| e.to_string())?;
            appender.flush().map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())?;
    }
    let took = started.elapsed();
    drop(conn);
    let _ = std::fs::remove_dir_all(dir);
    Ok(events as f64 / took.as_secs_f64())
}

/// What has been loaded into the query dataset so far.
#[derive(Debug, Default)]
pub struct Loaded {
    pub events: usize,
    pub points: usize,
    pub sessions: usize,
    /// Protobuf bytes of every export sent (logs and metrics).
    pub otlp_bytes: usize,
    pub ids: SampleIds,
}

/// Generates and sends at least `events` more events (and their sessions' metrics) over gRPC.
async fn load_dataset(plugin: &PluginProcess, generator: &mut Generator, events: usize, loaded: &mut Loaded) -> Result<Duration, String> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Export>>(8);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut senders = Vec::new();
    for _ in 0..LOAD_CLIENTS {
        let mut client = load::Client::connect(Protocol::Grpc, &plugin.grpc_addr, &plugin.http_addr).await?;
        let rx = rx.clone();
        senders.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some(exports) = next else { return Ok::<(), String>(()) };
                for e in &exports {
                    client.send(e).await?;
                }
            }
        }));
    }
    let started = Instant::now();
    let mut sent = 0;
    // each load walks the 30 days in time order, one slice per export batch, so the file holds
    // rows in about the order a live receiver stores them (and every size spans all 30 days)
    let span = Population::default().span_seconds;
    let slices = events.div_ceil(LOAD_BATCH).max(1) as u64;
    let mut slice = 0;
    while sent < events {
        generator.set_window(span * slice / slices, span.div_ceil(slices));
        slice += 1;
        let sessions = generator.sessions_with_events(LOAD_BATCH.min(events - sent).max(1));
        if loaded.ids.session_id.is_empty() {
            loaded.ids = sample_ids(&sessions[0].logs);
        }
        let mut exports: Vec<Export> =
            load::log_batches(&sessions, LOAD_BATCH).iter().map(|r| load::encode_logs(r, Protocol::Grpc)).collect::<Result<_, _>>()?;
        exports.push(load::encode_metrics(&load::merged_metrics(&sessions)));
        for e in &exports {
            match e.signal {
                load::Signal::Logs => sent += e.records,
                load::Signal::Metrics => loaded.points += e.records,
            }
            loaded.otlp_bytes += e.body.len();
        }
        loaded.sessions += sessions.len();
        if tx.send(exports).await.is_err() {
            break;
        }
    }
    drop(tx);
    for s in senders {
        s.await.map_err(|e| e.to_string())??;
    }
    loaded.events += sent;
    Ok(started.elapsed())
}

fn sample_ids(logs: &ExportLogsServiceRequest) -> SampleIds {
    let attr = |key: &str| {
        logs.resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .flat_map(|l| &l.attributes)
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .and_then(|v| match v {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    SampleIds { session_id: attr("session.id"), prompt_id: attr("prompt.id") }
}

/// The generated data's time range in ms: the population's 30 days plus the last session's tail.
fn data_range() -> (i64, i64) {
    let p = Population::default();
    let start = (p.start_unix_nanos / 1_000_000) as i64;
    (start, start + (p.span_seconds as i64 + 86_400) * 1000)
}

struct QuerySets {
    types: Vec<NamedQuery>,
    overview: Vec<NamedQuery>,
    sessions: Vec<NamedQuery>,
}

impl QuerySets {
    fn all(&self) -> Vec<NamedQuery> {
        self.types.iter().chain(&self.overview).chain(&self.sessions).cloned().collect()
    }
}

fn query_sets(ids: &SampleIds) -> Result<QuerySets, String> {
    Ok(QuerySets {
        types: queries::query_types(ids),
        overview: queries::dashboard_panels(queries::OVERVIEW, "overview panel", ids)?,
        sessions: queries::dashboard_panels(queries::SESSIONS, "sessions panel", ids)?,
    })
}

/// One query through QueryData: a warm-up run, then `runs` timed runs.
async fn time_plugin_query(plugin: &PluginProcess, q: &serde_json::Value, from: i64, to: i64, runs: usize) -> Result<Timing, String> {
    plugin.query(std::slice::from_ref(q), from, to).await?;
    let mut t = Timing::default();
    for _ in 0..runs {
        let started = Instant::now();
        plugin.query(std::slice::from_ref(q), from, to).await?;
        t.push(started.elapsed());
    }
    Ok(t)
}

/// A dashboard refresh: every panel's QueryData request at once, until the last one answers.
async fn time_dashboard(
    plugin: &PluginProcess,
    role: &str,
    panels: &[NamedQuery],
    from: i64,
    to: i64,
    runs: usize,
) -> Result<Timing, String> {
    let mut t = Timing::default();
    for run in 0..=runs {
        let started = Instant::now();
        let results =
            futures::future::join_all(panels.iter().map(|p| plugin.query_as(role, std::slice::from_ref(&p.json), from, to))).await;
        let elapsed = started.elapsed();
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        if run > 0 {
            t.push(elapsed);
        }
    }
    Ok(t)
}

/// Time from an acknowledged gRPC export of a new session to QueryData returning its events.
async fn ack_to_visible(plugin: &PluginProcess, seed: u64, runs: usize) -> Result<Timing, String> {
    let mut generator = Generator::new(Population { seed: seed ^ 0xacc, ..Population::default() });
    let mut client = load::Client::connect(Protocol::Grpc, &plugin.grpc_addr, &plugin.http_addr).await?;
    let (from, to) = data_range();
    let mut t = Timing::default();
    for _ in 0..runs {
        let session = generator.session();
        let id = sample_ids(&session.logs).session_id;
        let export = load::encode_logs(&session.logs, Protocol::Grpc)?;
        client.send(&export).await?;
        let acked = Instant::now();
        let q = json!({"queryType": "session_timeline", "sessionId": id});
        loop {
            let resp = plugin.query(std::slice::from_ref(&q), from, to).await?;
            let rows: usize = resp
                .responses
                .values()
                .flat_map(|r| &r.frames)
                .map(|f| queries::frame_rows(f))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .sum();
            if rows >= session.events {
                break;
            }
            if acked.elapsed() > Duration::from_secs(60) {
                return Err(format!("session {id} not visible 60 s after its export was acknowledged"));
            }
        }
        t.push(acked.elapsed());
    }
    Ok(t)
}

/// Times the captured SQL of every query and dashboard straight in DuckDB on the closed file.
fn raw_comparison(db: &Path, sets: &QuerySets, runs: usize, dataset: &mut DatasetReport) -> Result<(), String> {
    let conn = queries::open_raw(db)?;
    let (start_ms, end_ms) = data_range();
    let ctx = |from_ms: i64| crate::query::QueryContext {
        from: chrono::DateTime::from_timestamp_millis(from_ms).unwrap_or_default(),
        to: chrono::DateTime::from_timestamp_millis(end_ms).unwrap_or_default(),
        interval_ms: 0,
        max_data_points: 1000,
        limits: crate::query::raw::Limits::default(),
    };
    let all = sets.all();
    for raw in [queries::Raw::AsRun, queries::Raw::Rows] {
        for (row, t) in dataset.queries.iter_mut().zip(queries::raw_timings(&conn, &all, &ctx(start_ms), runs, raw)) {
            row.set_raw(raw, t);
        }
        use crate::store::masked::Access;
        let dashboards = [
            queries::raw_dashboard(&conn, &sets.overview, &ctx(start_ms), runs, raw, Access::Content),
            queries::raw_dashboard(&conn, &sets.overview, &ctx(end_ms - 86_400_000), runs, raw, Access::Content),
            queries::raw_dashboard(&conn, &sets.sessions, &ctx(start_ms), runs, raw, Access::Content),
            queries::raw_dashboard(&conn, &sets.sessions, &ctx(start_ms), runs, raw, Access::Masked),
        ];
        for (row, t) in dataset.dashboards.iter_mut().zip(dashboards) {
            row.set_raw(raw, t);
        }
    }
    Ok(())
}
