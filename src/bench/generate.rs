//! Realistic Claude Code telemetry at any size, deterministic from a seed.
//!
//! Each session is what one Claude Code run exports: log events with the attribute keys and
//! value types observed in `../shared/claude-code/fixtures` (numbers sent as strings where Claude
//! Code does so, `event.sequence` as int, `cost_usd` as double), and at its end one delta metrics
//! export (session count, cost, tokens by type, active time, lines, commits, PRs, edit decisions).
//! Users belong to teams; sessions pick a user, a model mix, prompts, tool calls and the rare
//! API error. A unit test checks every generated event against the fixtures' shapes.
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

const APP_VERSION: &str = "2.1.197";
/// (API model id in events, configured model in metrics, $ per input/output/cache-read/cache-write Mtok)
const MODELS: [(&str, &str, [f64; 4]); 3] = [
    ("claude-opus-4-8", "claude-opus-4-8[1m]", [5.0, 25.0, 0.5, 6.25]),
    ("claude-sonnet-4-6", "claude-sonnet-4-6", [3.0, 15.0, 0.3, 3.75]),
    ("claude-haiku-4-5", "claude-haiku-4-5", [1.0, 5.0, 0.1, 1.25]),
];
const TOOLS: [&str; 8] = ["Bash", "Read", "Edit", "Write", "Grep", "Glob", "WebFetch", "Task"];
const TEAMS: [&str; 8] = ["platform", "payments", "mobile", "data", "infra", "search", "growth", "security"];
const TERMINALS: [&str; 4] = ["xterm", "vscode", "iTerm.app", "tmux"];

/// splitmix64: small, fast and the same on every platform, so a seed always gives the same data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes).map(|_| format!("{:02x}", self.below(256))).collect()
    }
    fn uuid(&mut self) -> String {
        let h = self.hex(16);
        format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    }
}

/// The shape of the generated population.
#[derive(Debug, Clone)]
pub struct Population {
    pub seed: u64,
    pub users: u32,
    pub teams: u32,
    /// First session start, Unix ns.
    pub start_unix_nanos: u64,
    /// Sessions start spread over this many seconds.
    pub span_seconds: u64,
}

impl Default for Population {
    fn default() -> Self {
        // 2026-11-01T00:00:00Z, 30 days
        Population { seed: 42, users: 2000, teams: 8, start_unix_nanos: 1_793_491_200_000_000_000, span_seconds: 30 * 86_400 }
    }
}

/// One session's exports and what they add up to (for exact checks).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))] // the totals are for tests' exact checks
pub struct Session {
    pub logs: ExportLogsServiceRequest,
    pub metrics: ExportMetricsServiceRequest,
    pub events: usize,
    pub cost_usd: f64,
    pub api_requests: usize,
    pub tool_calls: usize,
}

struct User {
    id: String,
    email: String,
    team: &'static str,
    terminal: &'static str,
}

pub struct Generator {
    rng: Rng,
    population: Population,
    users: Vec<User>,
    /// Where in the population's span the next sessions start: (offset, length) in seconds.
    window: (u64, u64),
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }) }
}
fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}
fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}
fn d(key: &str, v: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(v))
}

impl Generator {
    pub fn new(population: Population) -> Generator {
        let mut rng = Rng::new(population.seed);
        let teams = (population.teams.max(1) as usize).min(TEAMS.len());
        let users = (0..population.users.max(1))
            .map(|n| User {
                id: rng.hex(32),
                email: format!("dev{n}@example.com"),
                team: TEAMS[rng.below(teams as u64) as usize],
                terminal: TERMINALS[rng.below(TERMINALS.len() as u64) as usize],
            })
            .collect();
        let window = (0, population.span_seconds);
        Generator { rng, population, users, window }
    }

    /// Makes the next sessions start within `[offset, offset + length)` seconds of the span
    /// (clamped to it). Telemetry arrives in about the order it happens; a loader that walks the
    /// span window by window stores rows in that order, as a live receiver does.
    pub fn set_window(&mut self, offset_seconds: u64, length_seconds: u64) {
        let span = self.population.span_seconds.max(1);
        let offset = offset_seconds.min(span - 1);
        self.window = (offset, length_seconds.clamp(1, span - offset));
    }

    /// The next session: a user, a start time, prompts with model calls and tool calls.
    pub fn session(&mut self) -> Session {
        let rng = &mut self.rng;
        let user = &self.users[rng.below(self.users.len() as u64) as usize];
        let session_id = rng.uuid();
        let start = self.population.start_unix_nanos + (self.window.0 + rng.below(self.window.1.max(1))) * 1_000_000_000;
        // most sessions use one model; some switch to a cheaper one for part of the work
        let main_model = if rng.chance(0.5) {
            0
        } else if rng.chance(0.7) {
            1
        } else {
            2
        };
        let common = |name: &str, time: u64, seq: i64| {
            vec![
                s("team", user.team),
                s("cost_center", "eng"),
                s("user.id", &user.id),
                s("user.email", &user.email),
                s("session.id", &session_id),
                s("app.version", APP_VERSION),
                s("terminal.type", user.terminal),
                s("event.name", name),
                s("event.timestamp", rfc3339_ms(time)),
                i("event.sequence", seq),
            ]
        };
        let mut records = Vec::new();
        let mut seq = 0i64;
        let mut now = start;
        let mut push = |records: &mut Vec<LogRecord>, name: &str, now: u64, extra: Vec<KeyValue>, trace: &[u8]| {
            let mut attributes = common(name, now, seq);
            attributes.extend(extra);
            seq += 1;
            records.push(LogRecord {
                time_unix_nano: now,
                observed_time_unix_nano: now,
                body: Some(AnyValue { value: Some(any_value::Value::StringValue(format!("claude_code.{name}"))) }),
                attributes,
                flags: u32::from(!trace.is_empty()),
                trace_id: trace.to_vec(),
                span_id: if trace.is_empty() { vec![] } else { trace[..8].to_vec() },
                ..Default::default()
            });
        };
        push(&mut records, "hook_registered", now, hook_registered(), &[]);

        let mut totals = Totals::default();
        let prompts = 1 + rng.below(6);
        for _ in 0..prompts {
            now += (2 + rng.below(120)) * 1_000_000_000;
            let prompt_id = rng.uuid();
            let trace: Vec<u8> = (0..16).map(|_| rng.below(256) as u8).collect();
            let with_prompt = |mut extra: Vec<KeyValue>| {
                extra.insert(0, s("prompt.id", &prompt_id));
                extra
            };
            if rng.chance(0.2) {
                push(&mut records, "at_mention", now, with_prompt(vec![s("mention_type", "file"), s("success", "true")]), &trace);
            }
            let text = PROMPTS[rng.below(PROMPTS.len() as u64) as usize];
            push(
                &mut records,
                "user_prompt",
                now,
                with_prompt(vec![s("prompt_length", text.len().to_string()), s("prompt", text)]),
                &trace,
            );
            let turns = 1 + rng.below(6);
            for turn in 0..turns {
                let m = if rng.chance(0.85) { main_model } else { rng.below(3) as usize };
                let (model, _, price) = MODELS[m];
                now += (5 + rng.below(40)) * 1_000_000;
                push(&mut records, "hook_execution_start", now, with_prompt(hook_start()), &trace);
                let request_id = format!("req_{}", rng.hex(12));
                if rng.chance(0.02) {
                    let status = *rng.pick(&[429i64, 500, 529]);
                    push(
                        &mut records,
                        "api_error",
                        now,
                        with_prompt(api_error(model, status, rng.below(2000) as i64, &request_id)),
                        &trace,
                    );
                    if rng.chance(0.15) {
                        push(&mut records, "api_retries_exhausted", now, with_prompt(retries_exhausted(model, status)), &trace);
                        totals.retries_exhausted += 1;
                        continue;
                    }
                }
                let tokens = [
                    1 + rng.below(400) as i64,
                    20 + rng.below(1500) as i64,
                    if turn == 0 { 0 } else { 2000 + rng.below(60_000) as i64 },
                    rng.below(6000) as i64,
                ];
                let cost = (0..4).map(|k| tokens[k] as f64 * price[k] / 1e6).sum::<f64>();
                let duration = 300 + rng.below(20_000) as i64;
                now += duration as u64 * 1_000_000;
                push(&mut records, "api_request", now, with_prompt(api_request(model, tokens, cost, duration, &request_id)), &trace);
                let reply = REPLIES[rng.below(REPLIES.len() as u64) as usize];
                push(&mut records, "assistant_response", now, with_prompt(assistant_response(model, reply, &request_id)), &trace);
                push(&mut records, "hook_execution_complete", now, with_prompt(hook_complete(rng)), &trace);
                totals.add_request(m, tokens, cost);
                // all but the last turn ask for a tool
                if turn + 1 < turns {
                    let tool = *rng.pick(&TOOLS);
                    let tool_use_id = format!("toolu_{}", rng.hex(12));
                    let accept = rng.chance(0.95);
                    let params = tool_parameters(tool);
                    push(&mut records, "tool_decision", now, with_prompt(tool_decision(tool, &tool_use_id, accept, &params)), &trace);
                    totals.tool_calls += 1;
                    if accept {
                        let ok = rng.chance(0.92);
                        let took = 5 + rng.below(4000);
                        now += took * 1_000_000;
                        push(
                            &mut records,
                            "tool_result",
                            now,
                            with_prompt(tool_result(tool, &tool_use_id, ok, took, &params, rng)),
                            &trace,
                        );
                        if matches!(tool, "Edit" | "Write") {
                            totals.lines_added += 1 + rng.below(80) as i64;
                            totals.lines_removed += rng.below(30) as i64;
                            totals.edit_decisions += 1;
                        }
                    }
                }
            }
            totals.active_user_s += 1.0 + rng.unit() * 20.0;
        }
        totals.active_cli_s = (now - start) as f64 / 1e9 * 0.3;
        totals.commits = i64::from(rng.chance(0.3));
        totals.pull_requests = i64::from(totals.commits > 0 && rng.chance(0.4));

        let resource = Resource {
            attributes: vec![
                s("team", user.team),
                s("cost_center", "eng"),
                s("host.arch", "amd64"),
                s("os.type", "linux"),
                s("os.version", "6.18.44"),
                s("service.name", "claude-code"),
                s("service.version", APP_VERSION),
            ],
            ..Default::default()
        };
        let events = records.len();
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "com.anthropic.claude_code.events".into(),
                        version: APP_VERSION.into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let metric_common = vec![
            s("team", user.team),
            s("cost_center", "eng"),
            s("user.id", &user.id),
            s("session.id", &session_id),
            s("app.version", APP_VERSION),
            s("terminal.type", user.terminal),
        ];
        let metrics = totals.metrics(resource, metric_common, start, now);
        Session { logs, metrics, events, cost_usd: totals.cost, api_requests: totals.requests, tool_calls: totals.tool_calls }
    }

    /// Sessions until at least `events` log events, each session's logs as one export.
    pub fn sessions_with_events(&mut self, events: usize) -> Vec<Session> {
        let mut out = Vec::new();
        let mut n = 0;
        while n < events {
            let session = self.session();
            n += session.events;
            out.push(session);
        }
        out
    }
}

#[derive(Default)]
struct Totals {
    cost: f64,
    requests: usize,
    tool_calls: usize,
    retries_exhausted: usize,
    /// per model index: cost and tokens (input, output, cacheRead, cacheCreation)
    by_model: [(f64, [i64; 4]); 3],
    lines_added: i64,
    lines_removed: i64,
    commits: i64,
    pull_requests: i64,
    edit_decisions: i64,
    active_user_s: f64,
    active_cli_s: f64,
}

impl Totals {
    fn add_request(&mut self, model: usize, tokens: [i64; 4], cost: f64) {
        self.cost += cost;
        self.requests += 1;
        self.by_model[model].0 += cost;
        for (total, n) in self.by_model[model].1.iter_mut().zip(tokens) {
            *total += n;
        }
    }

    /// One delta export at the session's end, the metric names and attributes of the fixtures.
    fn metrics(&self, resource: Resource, common: Vec<KeyValue>, start: u64, end: u64) -> ExportMetricsServiceRequest {
        let point = |value: f64, extra: Vec<KeyValue>| {
            let mut attributes = common.clone();
            attributes.extend(extra);
            NumberDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: end,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }
        };
        let sum = |name: &str, unit: &str, points: Vec<NumberDataPoint>| Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let mut metrics = vec![sum("claude_code.session.count", "", vec![point(1.0, vec![s("start_type", "fresh")])])];
        let used: Vec<usize> = (0..3).filter(|&m| self.by_model[m].0 > 0.0).collect();
        let per_model = |extra: &dyn Fn(usize) -> Vec<(f64, Vec<KeyValue>)>| {
            used.iter()
                .flat_map(|&m| {
                    extra(m).into_iter().map(move |(v, mut attrs)| {
                        attrs.splice(0..0, [s("model", MODELS[m].1), s("query_source", "repl_main_thread"), s("effort", "high")]);
                        (v, attrs)
                    })
                })
                .map(|(v, attrs)| point(v, attrs))
                .collect::<Vec<_>>()
        };
        metrics.push(sum("claude_code.cost.usage", "USD", per_model(&|m| vec![(self.by_model[m].0, vec![])])));
        metrics.push(sum(
            "claude_code.token.usage",
            "tokens",
            per_model(&|m| {
                ["input", "output", "cacheRead", "cacheCreation"]
                    .iter()
                    .enumerate()
                    .map(|(k, t)| (self.by_model[m].1[k] as f64, vec![s("type", *t)]))
                    .collect()
            }),
        ));
        metrics.push(sum(
            "claude_code.active_time.total",
            "s",
            vec![point(self.active_user_s, vec![s("type", "user")]), point(self.active_cli_s, vec![s("type", "cli")])],
        ));
        if self.lines_added + self.lines_removed > 0 {
            let model = MODELS[used.first().copied().unwrap_or(0)].1;
            metrics.push(sum(
                "claude_code.lines_of_code.count",
                "",
                vec![
                    point(self.lines_added as f64, vec![s("model", model), s("type", "added")]),
                    point(self.lines_removed as f64, vec![s("model", model), s("type", "removed")]),
                ],
            ));
        }
        if self.edit_decisions > 0 {
            let attrs = vec![s("decision", "accept"), s("source", "config"), s("tool_name", "Edit"), s("language", "Rust")];
            metrics.push(sum("claude_code.code_edit_tool.decision", "", vec![point(self.edit_decisions as f64, attrs)]));
        }
        if self.commits > 0 {
            metrics.push(sum("claude_code.commit.count", "", vec![point(self.commits as f64, vec![])]));
        }
        if self.pull_requests > 0 {
            metrics.push(sum("claude_code.pull_request.count", "", vec![point(self.pull_requests as f64, vec![])]));
        }
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "com.anthropic.claude_code".into(),
                        version: APP_VERSION.into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

const PROMPTS: [&str; 6] = [
    "Fix the failing test in the payments module.",
    "Run echo, read and edit @notes.txt, write summary.md, commit and open a PR.",
    "Why is the search endpoint slow? Profile it and suggest a fix.",
    "Add retries with backoff to the HTTP client.",
    "Refactor the config loader to use serde and add tests.",
    "Summarize what changed in the last three commits.",
];
const REPLIES: [&str; 4] =
    ["I'll run a command first.", "Let me read the file.", "Done: the test passes now.", "Here is a summary of the changes."];

fn rfc3339_ms(unix_nanos: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(unix_nanos as i64).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn hook_registered() -> Vec<KeyValue> {
    vec![
        s("hook_event", "PreToolUse"),
        s("hook_type", "command"),
        s("hook_source", "projectSettings"),
        s("safe_mode", "false"),
        s("hook_matcher", "Bash"),
    ]
}

fn hook_start() -> Vec<KeyValue> {
    vec![
        s("hook_event", "PreToolUse"),
        s("hook_name", "PreToolUse:Bash"),
        s("num_hooks", "1"),
        s("managed_only", "false"),
        s("hook_source", "merged"),
        s("safe_mode", "false"),
    ]
}

fn hook_complete(rng: &mut Rng) -> Vec<KeyValue> {
    vec![
        s("hook_event", "PreToolUse"),
        s("hook_name", "PreToolUse:Bash"),
        s("num_hooks", "1"),
        s("num_success", "1"),
        s("num_blocking", "0"),
        s("num_non_blocking_error", "0"),
        s("num_cancelled", "0"),
        s("total_duration_ms", (1 + rng.below(40)).to_string()),
        s("managed_only", "false"),
        s("hook_source", "merged"),
        s("safe_mode", "false"),
    ]
}

fn api_request(model: &str, tokens: [i64; 4], cost: f64, duration_ms: i64, request_id: &str) -> Vec<KeyValue> {
    vec![
        s("model", model),
        i("input_tokens", tokens[0]),
        i("output_tokens", tokens[1]),
        i("cache_read_tokens", tokens[2]),
        i("cache_creation_tokens", tokens[3]),
        d("cost_usd", cost),
        i("cost_usd_micros", (cost * 1e6).round() as i64),
        i("duration_ms", duration_ms),
        s("request_id", request_id),
        s("speed", "normal"),
        s("query_source", "repl_main_thread"),
        s("effort", "high"),
    ]
}

fn assistant_response(model: &str, reply: &str, request_id: &str) -> Vec<KeyValue> {
    vec![
        i("response_length", reply.len() as i64),
        s("response", reply),
        s("request_id", request_id),
        s("model", model),
        s("query_source", "repl_main_thread"),
    ]
}

fn api_error(model: &str, status: i64, duration_ms: i64, request_id: &str) -> Vec<KeyValue> {
    vec![
        s("model", model),
        s("error", format!("API Error: {status}")),
        i("status_code", status),
        i("duration_ms", duration_ms),
        i("attempt", 1),
        s("request_id", request_id),
        s("speed", "normal"),
        s("query_source", "repl_main_thread"),
        s("effort", "high"),
    ]
}

fn retries_exhausted(model: &str, status: i64) -> Vec<KeyValue> {
    vec![
        s("model", model),
        s("error", format!("API Error: {status}")),
        i("status_code", status),
        i("total_attempts", 11),
        i("total_retry_duration_ms", 45_000),
        s("speed", "normal"),
        s("query_source", "repl_main_thread"),
        s("effort", "high"),
    ]
}

fn tool_parameters(tool: &str) -> String {
    match tool {
        "Bash" => r#"{"bash_command":"cargo","full_command":"cargo test","description":"Run the tests"}"#.into(),
        _ => format!(r#"{{"tool":"{tool}","file_path":"src/lib.rs"}}"#),
    }
}

fn tool_decision(tool: &str, tool_use_id: &str, accept: bool, params: &str) -> Vec<KeyValue> {
    vec![
        s("decision", if accept { "accept" } else { "reject" }),
        s("source", if accept { "config" } else { "user_reject" }),
        s("tool_name", tool),
        s("tool_use_id", tool_use_id),
        s("tool_parameters", params),
    ]
}

fn tool_result(tool: &str, tool_use_id: &str, ok: bool, took_ms: u64, params: &str, rng: &mut Rng) -> Vec<KeyValue> {
    vec![
        s("tool_name", tool),
        s("tool_use_id", tool_use_id),
        s("success", if ok { "true" } else { "false" }),
        s("duration_ms", took_ms.to_string()),
        s("tool_parameters", params),
        s("tool_input", params),
        s("tool_input_size_bytes", params.len().to_string()),
        s("tool_result_size_bytes", rng.below(20_000).to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::collections::{BTreeMap, BTreeSet};

    fn kind(v: &AnyValue) -> &'static str {
        match v.value {
            Some(any_value::Value::StringValue(_)) => "s",
            Some(any_value::Value::IntValue(_)) => "i",
            Some(any_value::Value::DoubleValue(_)) => "d",
            Some(any_value::Value::BoolValue(_)) => "b",
            _ => "other",
        }
    }

    /// event name → attribute key → value kind, over every fixture log export.
    fn fixture_shapes() -> BTreeMap<String, BTreeMap<String, &'static str>> {
        let mut shapes: BTreeMap<String, BTreeMap<String, &'static str>> = BTreeMap::new();
        use crate::ingest::decode::{decode, Encoding, ExportRequest, Signal};
        for f in crate::test_fixtures::fixtures().iter().filter(|f| f.signal == "logs" && f.content_encoding.is_none()) {
            let encoding = if f.file.ends_with(".json") { Encoding::Json } else { Encoding::Protobuf };
            let Ok(ExportRequest::Logs(req)) = decode(Signal::Logs, encoding, &crate::test_fixtures::fixture(&f.file)) else {
                panic!("{}", f.file)
            };
            for r in req.resource_logs.iter().flat_map(|r| &r.scope_logs).flat_map(|s| &s.log_records) {
                let Some(any_value::Value::StringValue(name)) = r.body.as_ref().and_then(|b| b.value.clone()) else { continue };
                let shape = shapes.entry(name).or_default();
                for a in &r.attributes {
                    shape.insert(a.key.clone(), kind(a.value.as_ref().unwrap()));
                }
            }
        }
        shapes
    }

    #[test]
    fn events_have_the_keys_and_value_types_claude_code_sends() {
        let fixtures = fixture_shapes();
        let mut generator = Generator::new(Population { users: 50, ..Default::default() });
        let mut seen = BTreeSet::new();
        for session in generator.sessions_with_events(20_000) {
            for r in session.logs.resource_logs.iter().flat_map(|r| &r.scope_logs).flat_map(|s| &s.log_records) {
                let Some(any_value::Value::StringValue(name)) = r.body.as_ref().and_then(|b| b.value.clone()) else { panic!("body") };
                let expected = fixtures.get(&name).unwrap_or_else(|| panic!("{name} is not an event Claude Code sent"));
                for a in &r.attributes {
                    // user.email appears when Claude Code knows the account; the fixtures ran without one
                    if a.key == "user.email" {
                        continue;
                    }
                    let want = expected.get(&a.key).unwrap_or_else(|| panic!("{name}: {} not in the fixtures", a.key));
                    assert_eq!(*want, kind(a.value.as_ref().unwrap()), "{name}.{}", a.key);
                }
                let keys: BTreeSet<&str> = r.attributes.iter().map(|a| a.key.as_str()).collect();
                for key in expected.keys() {
                    assert!(keys.contains(key.as_str()), "{name}: missing {key}");
                }
                seen.insert(name);
            }
        }
        // every event type the generator knows shows up at this size
        for name in ["user_prompt", "api_request", "api_error", "api_retries_exhausted", "tool_result", "tool_decision"] {
            assert!(seen.contains(&format!("claude_code.{name}")), "{name} never generated");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let a: Vec<u8> =
            Generator::new(Population::default()).sessions_with_events(2000).iter().flat_map(|s| s.logs.encode_to_vec()).collect();
        let b: Vec<u8> =
            Generator::new(Population::default()).sessions_with_events(2000).iter().flat_map(|s| s.logs.encode_to_vec()).collect();
        assert_eq!(a, b);
        let c: Vec<u8> = Generator::new(Population { seed: 7, ..Default::default() })
            .sessions_with_events(2000)
            .iter()
            .flat_map(|s| s.logs.encode_to_vec())
            .collect();
        assert_ne!(a, c);
    }

    #[tokio::test]
    async fn generated_sessions_ingest_and_add_up() {
        use crate::ingest::decode::{Encoding, Signal};
        let dir = tempfile::tempdir().unwrap();
        let state = crate::app::AppState::new(crate::config::Config::standalone(Some(dir.path().to_path_buf()), None, None));
        let store = state.open_store().await.unwrap();
        let sessions = Generator::new(Population { users: 20, ..Default::default() }).sessions_with_events(3000);
        let (mut events, mut cost, mut requests, mut tool_calls) = (0, 0.0, 0, 0);
        for session in &sessions {
            for (signal, body) in [(Signal::Logs, session.logs.encode_to_vec()), (Signal::Metrics, session.metrics.encode_to_vec())] {
                let outcome = state
                    .ingest
                    .export_body(
                        signal,
                        Encoding::Protobuf,
                        &body,
                        false,
                        crate::ingest::stats::Origin { protocol: crate::ingest::stats::Protocol::Grpc, peer: None },
                    )
                    .await
                    .unwrap();
                assert_eq!(outcome.rejected, 0, "{}", outcome.message);
            }
            events += session.events;
            cost += session.cost_usd;
            requests += session.api_requests;
            tool_calls += session.tool_calls;
        }
        let (stored, event_cost, metric_cost, stored_requests, stored_sessions, decisions) = store
            .read(|c| {
                c.query_row(
                    "SELECT (SELECT count(*) FROM events),
                            (SELECT sum(cost_usd) FROM events WHERE event_name = 'api_request'),
                            (SELECT sum(increment) FROM metric_points WHERE metric_name = 'claude_code.cost.usage'),
                            (SELECT count(*) FROM events WHERE event_name = 'api_request'),
                            (SELECT sum(increment) FROM metric_points WHERE metric_name = 'claude_code.session.count'),
                            (SELECT count(*) FROM events WHERE event_name = 'tool_decision')",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, f64>(1)?,
                            r.get::<_, f64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, f64>(4)?,
                            r.get::<_, i64>(5)?,
                        ))
                    },
                )
                .map_err(Into::into)
            })
            .await
            .unwrap();
        assert_eq!(stored as usize, events);
        assert_eq!(stored_requests as usize, requests);
        assert!((event_cost - cost).abs() < 1e-6 && (metric_cost - cost).abs() < 1e-6, "{event_cost} {metric_cost} {cost}");
        assert_eq!(stored_sessions as usize, sessions.len());
        assert_eq!(decisions as usize, tool_calls);
    }
}
