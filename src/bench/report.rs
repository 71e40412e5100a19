//! Benchmark results: JSON for tools, Markdown tables for people (BENCHMARKS.md is this output),
//! and each target of the issue checked against the numbers.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::queries::{NamedQuery, Raw, Timing};
use super::{BenchArgs, Loaded};

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub seed: u64,
    pub runs: usize,
    pub startup: Vec<StartupRow>,
    pub ingest: Vec<IngestRow>,
    pub rss_ingest_matrix: BTreeMap<String, u64>,
    pub datasets: Vec<DatasetReport>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
    pub duckdb: String,
    pub version: &'static str,
}

impl Machine {
    fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("unknown").trim();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let os = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|r| format!("Linux {}", r.trim())).unwrap_or_default();
        let duckdb = duckdb::Connection::open_in_memory()
            .and_then(|c| c.query_row("SELECT version()", [], |r| r.get::<_, String>(0)))
            .unwrap_or_default();
        Machine {
            cpu: cpu.to_string(),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            memory_gib: (mem_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            os,
            duckdb,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StartupRow {
    pub file: String,
    pub handshake_ms: f64,
    pub ready_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct IngestRow {
    pub protocol: &'static str,
    pub batch: usize,
    pub clients: usize,
    pub events: usize,
    pub bytes: usize,
    pub seconds: f64,
    pub events_per_s: f64,
    pub mb_per_s: f64,
    /// The same rows through DuckDB's Appender, one commit per request.
    pub appender_events_per_s: f64,
    pub ratio: f64,
}

impl IngestRow {
    pub fn new(protocol: &'static str, batch: usize, clients: usize, events: usize, bytes: usize, took: Duration, limit: f64) -> Self {
        let s = took.as_secs_f64().max(1e-9);
        let events_per_s = events as f64 / s;
        IngestRow {
            protocol,
            batch,
            clients,
            events,
            bytes,
            seconds: s,
            events_per_s,
            mb_per_s: bytes as f64 / s / 1e6,
            appender_events_per_s: limit,
            ratio: events_per_s / limit,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct QueryRow {
    pub group: String,
    pub name: String,
    pub range: String,
    pub plugin_median_ms: f64,
    pub plugin_p95_ms: f64,
    /// The SQL QueryData ran (rollups where they answer), straight in DuckDB.
    pub raw_median_ms: f64,
    pub raw_p95_ms: f64,
    /// The same question's SQL over the rows alone (rollups off), straight in DuckDB.
    pub rows_median_ms: f64,
    /// Plugin median ÷ raw SQL over the rows median: what the plugin makes of the question.
    pub ratio: f64,
    pub error: Option<String>,
}

impl QueryRow {
    pub fn new(q: &NamedQuery, range: &str, t: Result<Timing, String>) -> Self {
        Self::from_timing(q.group, &q.name, range, t)
    }

    pub fn dashboard(name: &str, t: Result<Timing, String>) -> Self {
        Self::from_timing("dashboard refresh", name, "", t)
    }

    fn from_timing(group: &str, name: &str, range: &str, t: Result<Timing, String>) -> Self {
        let (median, p95, error) = match t {
            Ok(t) => (t.median(), t.p95(), None),
            Err(e) => (f64::NAN, f64::NAN, Some(e)),
        };
        QueryRow {
            group: group.into(),
            name: name.into(),
            range: range.into(),
            plugin_median_ms: median,
            plugin_p95_ms: p95,
            raw_median_ms: f64::NAN,
            raw_p95_ms: f64::NAN,
            rows_median_ms: f64::NAN,
            ratio: f64::NAN,
            error,
        }
    }

    pub fn set_raw(&mut self, raw: Raw, t: Result<Timing, String>) {
        match (raw, t) {
            (Raw::AsRun, Ok(t)) => {
                self.raw_median_ms = t.median();
                self.raw_p95_ms = t.p95();
            }
            (Raw::Rows, Ok(t)) => {
                self.rows_median_ms = t.median();
                // a query that runs no SQL (a budget without budgets set) has nothing to compare
                self.ratio = if self.rows_median_ms > 0.01 { self.plugin_median_ms / self.rows_median_ms } else { f64::NAN };
            }
            (_, Err(e)) => self.error = Some(self.error.take().map(|p| format!("{p}; raw: {e}")).unwrap_or(format!("raw: {e}"))),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DatasetReport {
    pub events: usize,
    pub metric_points: usize,
    pub sessions: usize,
    pub load_seconds: f64,
    pub otlp_bytes: usize,
    pub disk_bytes: u64,
    /// Disk bytes ÷ OTLP protobuf bytes.
    pub disk_ratio: f64,
    pub queries: Vec<QueryRow>,
    pub dashboards: Vec<QueryRow>,
    pub ack_to_visible_median_ms: f64,
    pub ack_to_visible_p95_ms: f64,
    /// Peak RSS of the plugin process per phase while this dataset was loaded and queried.
    pub rss: BTreeMap<String, u64>,
    pub shutdown_ms: Option<f64>,
    /// From the end of loading until every rollup hour was rebuilt.
    pub rollup_settle_ms: Option<f64>,
}

impl DatasetReport {
    pub fn new(loaded: &Loaded, load: Duration) -> Self {
        DatasetReport {
            events: loaded.events,
            metric_points: loaded.points,
            sessions: loaded.sessions,
            load_seconds: load.as_secs_f64(),
            otlp_bytes: loaded.otlp_bytes,
            disk_bytes: 0,
            disk_ratio: f64::NAN,
            queries: Vec::new(),
            dashboards: Vec::new(),
            ack_to_visible_median_ms: f64::NAN,
            ack_to_visible_p95_ms: f64::NAN,
            rss: BTreeMap::new(),
            shutdown_ms: None,
            rollup_settle_ms: None,
        }
    }

    /// The database file and its WAL after a clean shutdown.
    pub fn measure_disk(&mut self, db: &Path) {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = db.as_os_str().to_owned();
        wal.push(".wal");
        self.disk_bytes = size(db) + size(Path::new(&wal));
        self.disk_ratio = self.disk_bytes as f64 / self.otlp_bytes.max(1) as f64;
    }
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn ratio(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.2}×")
    }
}

impl Report {
    pub fn new(args: &BenchArgs) -> Report {
        let mut command = "gpx_claudecode bench".to_string();
        if args.smoke {
            command.push_str(" --smoke");
        } else {
            let sizes: Vec<String> = args.sizes.iter().map(|s| s.to_string()).collect();
            let _ = write!(command, " --sizes {} --ingest-events {} --runs {}", sizes.join(","), args.ingest_events, args.runs);
        }
        Report {
            machine: Machine::detect(),
            command,
            seed: args.seed,
            runs: args.runs,
            startup: Vec::new(),
            ingest: Vec::new(),
            rss_ingest_matrix: BTreeMap::new(),
            datasets: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Checks the targets (issue 19) against the largest dataset and the whole ingest matrix.
    pub fn evaluate_targets(&mut self) {
        let mut targets = Vec::new();
        let mut add = |name: &str, target: &str, measured: String, met: bool| {
            targets.push(Target { name: name.into(), target: target.into(), measured, met })
        };
        if let Some(best) = self.ingest.iter().max_by(|a, b| a.events_per_s.total_cmp(&b.events_per_s)) {
            add(
                "ingest rate (best configuration)",
                "≥ 100 000 events/s",
                format!("{:.0} events/s ({} batch {} × {} clients)", best.events_per_s, best.protocol, best.batch, best.clients),
                best.events_per_s >= 100_000.0,
            );
        }
        let large: Vec<&IngestRow> = self.ingest.iter().filter(|r| r.batch == 4096 && r.clients == 8).collect();
        if let Some(best) = large.iter().max_by(|a, b| a.ratio.total_cmp(&b.ratio)) {
            let worst = large.iter().map(|r| r.ratio).fold(f64::INFINITY, f64::min);
            add(
                "ingest vs Appender, 4096-record exports, 8 clients",
                "≥ 70 %",
                format!("{:.0}–{:.0} % (best {})", worst * 100.0, best.ratio * 100.0, best.protocol),
                best.ratio >= 0.7,
            );
        }
        let mut rss_peak = self.rss_ingest_matrix.values().copied().max().unwrap_or(0);
        let mut rss_idle = self.rss_ingest_matrix.get("idle").copied().unwrap_or(0);
        if let Some(d) = self.datasets.last() {
            let size = d.events;
            if let Some(o) = d.dashboards.first() {
                let smaller = self.datasets.first().filter(|s| s.events < size).and_then(|s| s.dashboards.first());
                let growth = smaller.map(|s| o.plugin_median_ms / s.plugin_median_ms);
                add(
                    &format!("overview dashboard refresh, 30 d, {size} events"),
                    "< 150 ms, < 2× its time at the smaller dataset",
                    match growth {
                        Some(g) => format!("{} ms median ({g:.1}× the smaller dataset's)", ms(o.plugin_median_ms)),
                        None => format!("{} ms median", ms(o.plugin_median_ms)),
                    },
                    o.plugin_median_ms < 150.0 && growth.is_none_or(|g| g < 2.0),
                );
            }
            if let Some(o) = d.dashboards.iter().find(|q| q.name.starts_with("sessions dashboard")) {
                add(
                    &format!("sessions dashboard refresh, 30 d, {size} events"),
                    "< 300 ms",
                    format!("{} ms median", ms(o.plugin_median_ms)),
                    o.plugin_median_ms < 300.0,
                );
            }
            let worst = d.queries.iter().filter(|q| !q.ratio.is_nan()).max_by(|a, b| a.ratio.total_cmp(&b.ratio));
            if let Some(w) = worst {
                let over = d.queries.iter().filter(|q| q.ratio > 1.0).count();
                add(
                    &format!("each query ≤ raw SQL over the rows, {size} events"),
                    "≤ 1.0×",
                    format!("worst {} ({} {}); {over} of {} over", ratio(w.ratio), w.group, w.name, d.queries.len()),
                    over == 0,
                );
            }
            add(
                "ack → visible",
                "< 1000 ms",
                format!("{} ms median, {} ms p95", ms(d.ack_to_visible_median_ms), ms(d.ack_to_visible_p95_ms)),
                d.ack_to_visible_p95_ms < 1000.0,
            );
            add("disk ÷ OTLP protobuf bytes", "≤ 0.15", format!("{:.3}", d.disk_ratio), d.disk_ratio <= 0.15);
        }
        let failed: Vec<String> = self
            .datasets
            .iter()
            .flat_map(|d| {
                d.queries.iter().chain(&d.dashboards).filter(|q| q.error.is_some()).map(move |q| format!("{} at {}", q.name, d.events))
            })
            .collect();
        add(
            "every query and dashboard answers",
            "no errors",
            if failed.is_empty() { "all answered".into() } else { format!("failed: {}", failed.join("; ")) },
            failed.is_empty(),
        );
        for d in &self.datasets {
            rss_peak = rss_peak.max(d.rss.values().copied().max().unwrap_or(0));
            rss_idle = rss_idle.max(d.rss.get("idle").copied().unwrap_or(0));
        }
        add("peak RSS, any phase", "< 400 MiB", format!("{:.0} MiB", mib(rss_peak)), mib(rss_peak) < 400.0);
        add("RSS idle", "< 100 MiB", format!("{:.0} MiB", mib(rss_idle)), mib(rss_idle) < 100.0);
        let handshake = self.startup.iter().map(|s| s.handshake_ms).fold(0.0, f64::max);
        add("start-up to handshake (worst file)", "< 200 ms", format!("{} ms", ms(handshake)), handshake < 200.0);
        self.targets = targets;
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(o, "## Machine\n");
        let _ = writeln!(
            o,
            "{} · {} cores · {} GiB · {} · DuckDB {} · gpx_claudecode {}\n",
            m.cpu, m.cores, m.memory_gib, m.os, m.duckdb, m.version
        );
        let _ = writeln!(o, "Command: `{}` (seed {}, {} timed runs per query after one warm-up)\n", self.command, self.seed, self.runs);
        let _ = writeln!(o, "## Targets\n\n| measure | target | measured | met |\n|---|---|---|---|");
        for t in &self.targets {
            let _ = writeln!(o, "| {} | {} | {} | {} |", t.name, t.target, t.measured, if t.met { "yes" } else { "**no**" });
        }
        let _ = writeln!(o, "\n## Ingest through the OTLP receiver (loopback) vs DuckDB's Appender\n");
        let _ = writeln!(o, "| protocol | batch | clients | events | events/s | MB/s | Appender events/s | ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.ingest {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.0} % |",
                r.protocol,
                r.batch,
                r.clients,
                r.events,
                r.events_per_s,
                r.mb_per_s,
                r.appender_events_per_s,
                r.ratio * 100.0
            );
        }
        let _ = writeln!(o, "\nPeak RSS during the ingest matrix: {}\n", rss_text(&self.rss_ingest_matrix));
        for d in &self.datasets {
            let _ = writeln!(
                o,
                "## {} events ({} metric points, {} sessions)\n\nLoaded over gRPC in {:.1} s ({:.0} events/s). Disk {:.1} MiB = {:.0} bytes/event; OTLP protobuf {:.1} MiB = {:.0} bytes/event; ratio {:.3}. Ack → visible {} ms median, {} ms p95. Rollups rebuilt {} ms after loading ended. Peak RSS: {}. Shutdown after loading (checkpoint) {} ms.\n",
                d.events,
                d.metric_points,
                d.sessions,
                d.load_seconds,
                d.events as f64 / d.load_seconds.max(1e-9),
                mib(d.disk_bytes),
                d.disk_bytes as f64 / d.events.max(1) as f64,
                mib(d.otlp_bytes as u64),
                d.otlp_bytes as f64 / d.events.max(1) as f64,
                d.disk_ratio,
                ms(d.ack_to_visible_median_ms),
                ms(d.ack_to_visible_p95_ms),
                d.rollup_settle_ms.map(ms).unwrap_or_default(),
                rss_text(&d.rss),
                d.shutdown_ms.map(ms).unwrap_or_default(),
            );
            let _ = writeln!(
                o,
                "| query | QueryData median ms | p95 ms | its SQL raw, median ms | p95 ms | raw SQL over the rows, median ms | QueryData ÷ rows |\n|---|---:|---:|---:|---:|---:|---:|"
            );
            for q in d.dashboards.iter().chain(&d.queries) {
                let name =
                    if q.range.is_empty() { format!("{}: {}", q.group, q.name) } else { format!("{}: {} ({})", q.group, q.name, q.range) };
                let err = q.error.as_deref().map(|e| format!(" — error: {e}")).unwrap_or_default();
                let _ = writeln!(
                    o,
                    "| {name}{err} | {} | {} | {} | {} | {} | {} |",
                    ms(q.plugin_median_ms),
                    ms(q.plugin_p95_ms),
                    ms(q.raw_median_ms),
                    ms(q.raw_p95_ms),
                    ms(q.rows_median_ms),
                    ratio(q.ratio)
                );
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "## Start-up\n\n| file | process start → handshake ms | → receiver ready ms |\n|---|---:|---:|");
        for s in &self.startup {
            let _ = writeln!(o, "| {} | {} | {} |", s.file, ms(s.handshake_ms), ms(s.ready_ms));
        }
        o
    }
}

fn rss_text(peaks: &BTreeMap<String, u64>) -> String {
    peaks.iter().map(|(phase, b)| format!("{phase} {:.0} MiB", mib(*b))).collect::<Vec<_>>().join(", ")
}
