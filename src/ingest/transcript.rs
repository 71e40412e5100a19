//! Claude Code's local session transcripts (`~/.claude/projects/<project>/<session>.jsonl`, and
//! `<session>/subagents/agent-<id>.jsonl` for subagents) → one `api_request` row per model call.
//!
//! A transcript writes one `assistant` line per content block, each repeating the call's whole
//! usage: calls are kept once per (message id, request id), with the largest usage of their
//! lines. Synthetic lines (an API error after the last retry) are not calls. Every other line
//! type carries no call; a line that is not JSON is reported with its file and line number.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::prices::{PriceTable, Usage};
use crate::store::rows::{Common, EventRow, Micros};
use crate::store::schema::EVENT_COLUMNS;

/// `scope_name` of imported rows: what marks them as history from a transcript (the
/// `data_source` key reads it).
pub const TRANSCRIPT_SCOPE: &str = "gpx_claudecode.transcript";

/// One model call of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptCall {
    pub session_id: String,
    pub request_id: String,
    pub message_id: String,
    pub model: String,
    /// Time of the call's last line (the end of the response), µs since the epoch.
    pub time_us: Micros,
    pub usage: Usage,
    pub cache_creation_5m: i64,
    /// `usage.speed`: `standard` or `fast`.
    pub speed: Option<String>,
    pub service_tier: Option<String>,
    /// The prompt the call answers: the `promptId` of the file's latest user line before it.
    pub prompt_id: Option<String>,
    /// Set on a subagent's calls (sidechain), with the agent type (`attributionAgent`).
    pub agent_id: Option<String>,
    pub agent_type: Option<String>,
    pub cwd: Option<String>,
    pub git_branch: Option<String>,
    pub version: Option<String>,
    pub file: String,
    /// 1-based number of the call's first line.
    pub line: usize,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedLine {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// What one file holds.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub lines: usize,
    pub calls: Vec<TranscriptCall>,
    /// Assistant lines of API errors (`<synthetic>` model): no call was made.
    pub synthetic: usize,
    pub skipped: Vec<SkippedLine>,
}

fn text(v: &Json, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Json::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

fn int(v: &Json, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Json::as_i64).unwrap_or(0)
}

/// Parses one transcript file's text; `file` names it in reports.
pub fn parse(file: &str, content: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    let mut prompt: Option<String> = None;
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for (i, raw) in content.lines().enumerate() {
        out.lines += 1;
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let skip = |reason: String| SkippedLine { file: file.to_string(), line: n, reason };
        let line: Json = match serde_json::from_str(raw) {
            Ok(v @ Json::Object(_)) => v,
            Ok(_) => {
                out.skipped.push(skip("not a JSON object".into()));
                continue;
            }
            Err(e) => {
                out.skipped.push(skip(format!("not JSON ({e}); a truncated or corrupted line")));
                continue;
            }
        };
        match line.get("type").and_then(Json::as_str) {
            Some("user") => {
                if let Some(p) = text(&line, "/promptId") {
                    prompt = Some(p);
                }
                continue;
            }
            Some("assistant") => {}
            _ => continue,
        }
        let model = text(&line, "/message/model");
        if model.as_deref() == Some("<synthetic>") || line.get("isApiErrorMessage").and_then(Json::as_bool) == Some(true) {
            out.synthetic += 1;
            continue;
        }
        let (Some(message_id), Some(request_id), Some(session_id), Some(usage)) =
            (text(&line, "/message/id"), text(&line, "/requestId"), text(&line, "/sessionId"), line.pointer("/message/usage"))
        else {
            out.skipped.push(skip("assistant line without message.id, requestId, sessionId or message.usage".into()));
            continue;
        };
        let Some(time_us) =
            text(&line, "/timestamp").and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.timestamp_micros())
        else {
            out.skipped.push(skip("assistant line without a valid timestamp".into()));
            continue;
        };
        let u = Usage {
            input: int(usage, "/input_tokens"),
            output: int(usage, "/output_tokens"),
            cache_read: int(usage, "/cache_read_input_tokens"),
            cache_creation: int(usage, "/cache_creation_input_tokens"),
            cache_creation_1h: int(usage, "/cache_creation/ephemeral_1h_input_tokens"),
        };
        let call = TranscriptCall {
            session_id,
            request_id: request_id.clone(),
            message_id: message_id.clone(),
            model: model.unwrap_or_default(),
            time_us,
            usage: u,
            cache_creation_5m: int(usage, "/cache_creation/ephemeral_5m_input_tokens"),
            speed: text(usage, "/speed"),
            service_tier: text(usage, "/service_tier"),
            prompt_id: prompt.clone(),
            agent_id: text(&line, "/agentId").filter(|_| line.get("isSidechain").and_then(Json::as_bool) == Some(true)),
            agent_type: text(&line, "/attributionAgent"),
            cwd: text(&line, "/cwd"),
            git_branch: text(&line, "/gitBranch"),
            version: text(&line, "/version"),
            file: file.to_string(),
            line: n,
        };
        match index.get(&(message_id.clone(), request_id.clone())) {
            Some(&at) => {
                // a later block of the same response: same usage (or a fuller one), later time
                let kept = &mut out.calls[at];
                kept.time_us = kept.time_us.max(call.time_us);
                if call.usage.total() > kept.usage.total() {
                    kept.usage = call.usage;
                    kept.cache_creation_5m = call.cache_creation_5m;
                }
            }
            None => {
                index.insert((message_id, request_id), out.calls.len());
                out.calls.push(call);
            }
        }
    }
    out
}

impl TranscriptCall {
    /// Claude Code's telemetry says `normal` where the transcript says `standard`.
    fn telemetry_speed(&self) -> Option<&str> {
        self.speed.as_deref().map(|s| if s == "standard" { "normal" } else { s })
    }

    /// The call as an `api_request` row, priced at list price (`cost_usd`; none without one).
    pub fn to_event(&self, received_at: Micros, prices: &PriceTable, user: &ImportUser) -> EventRow {
        let fast = self.speed.as_deref() == Some("fast");
        let mut attrs = Map::new();
        let mut put = |k: &str, v: Json| {
            if !v.is_null() {
                attrs.insert(k.to_string(), v);
            }
        };
        put("session.id", json!(self.session_id));
        put("prompt.id", json!(self.prompt_id));
        put("user.id", json!(user.id));
        put("user.email", json!(user.email));
        put("app.version", json!(self.version));
        put("model", json!(self.model));
        put("request_id", json!(self.request_id));
        put("message.id", json!(self.message_id));
        put("input_tokens", json!(self.usage.input));
        put("output_tokens", json!(self.usage.output));
        put("cache_read_tokens", json!(self.usage.cache_read));
        put("cache_creation_tokens", json!(self.usage.cache_creation));
        put("cache_creation_5m_tokens", json!(self.cache_creation_5m));
        put("cache_creation_1h_tokens", json!(self.usage.cache_creation_1h));
        put("cost_usd", json!(prices.cost(&self.model, &self.usage, fast)));
        put("speed", json!(self.telemetry_speed()));
        put("service_tier", json!(self.service_tier));
        // the metrics' class vocabulary: a main-loop call; a subagent's is told by its agent_id
        put("query_source", json!(if self.agent_id.is_some() { None } else { Some("main") }));
        put("agent_id", json!(self.agent_id));
        put("agent.name", json!(self.agent_type.as_ref().filter(|_| self.agent_id.is_some())));
        put("cwd", json!(self.cwd));
        // outside a repository Claude Code writes "HEAD"
        put("vcs.ref.head.name", json!(self.git_branch.as_ref().filter(|b| b.as_str() != "HEAD")));
        put("data.source", json!("transcript"));
        put("transcript.file", json!(self.file));
        put("transcript.line", json!(self.line));
        let lifted = super::attrs::lift(EVENT_COLUMNS, &super::attrs::Attrs::from_map(&attrs), None);
        EventRow {
            time: self.time_us,
            observed_time: None,
            received_at,
            event_name: "api_request".into(),
            body: Some("claude_code.api_request".into()),
            severity_number: None,
            severity_text: None,
            trace_id: None,
            span_id: None,
            flags: None,
            common: Common {
                typed: lifted.typed,
                lifted: lifted.columns,
                native: lifted.native,
                attributes: lifted.rest,
                resource: json!({"service.name": "claude-code", "service.version": self.version}).to_string(),
                scope_name: Some(TRANSCRIPT_SCOPE.into()),
                scope_version: Some(env!("CARGO_PKG_VERSION").into()),
            },
            dropped_attributes: 0,
            event_name_lifted: false,
        }
    }
}

/// Who imported history belongs to: transcripts do not name the user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportUser {
    pub id: Option<String>,
    pub email: Option<String>,
}

/// What `/v1/transcripts` takes: calls of one or more transcripts and whose they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportRequest {
    #[serde(default)]
    pub user: ImportUser,
    pub calls: Vec<TranscriptCall>,
}

/// What an import stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// Calls stored now.
    pub new: usize,
    /// Calls already stored, from telemetry or an earlier import.
    pub known: usize,
    /// Calls imported before with a smaller usage, replaced by the fuller one.
    pub replaced: usize,
    /// Models without a list price: their calls are stored without a cost.
    pub unpriced_models: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_per_message_and_request_with_its_prompt_and_agent() {
        let dir = crate::test_fixtures::transcripts_dir().join("subagent-2.1.332/projects");
        let mut calls = Vec::new();
        for f in crate::test_fixtures::jsonl_files(&dir) {
            let p = parse(&f.display().to_string(), &std::fs::read_to_string(&f).unwrap());
            assert!(p.skipped.is_empty(), "{:?}", p.skipped);
            calls.extend(p.calls);
        }
        calls.sort_by_key(|c| c.time_us);
        assert_eq!(calls.len(), 4, "5 assistant lines, 4 calls");
        let sub: Vec<_> = calls.iter().filter(|c| c.agent_id.is_some()).collect();
        assert_eq!(sub.len(), 2);
        assert!(sub.iter().all(|c| c.agent_id.as_deref() == Some("a7d13cc7bcd120c70") && c.model == "claude-haiku-5-5"));
        assert!(calls.iter().all(|c| c.prompt_id.as_deref() == Some("f15cde67-ccb3-403f-b457-96f15c2b6b62")));
        let first = &calls[0];
        assert_eq!(
            (first.usage.input, first.usage.output, first.usage.cache_creation, first.usage.cache_creation_1h, first.cache_creation_5m),
            (21, 64, 3000, 1000, 2000)
        );
        assert_eq!(first.request_id, "req_mock_fc62804c96ef4d4d98f1");
    }

    #[test]
    fn bad_lines_are_reported_with_their_number_and_synthetic_ones_are_not_calls() {
        let good = r#"{"type":"assistant","sessionId":"s","requestId":"r1","timestamp":"2026-12-01T07:00:00.000Z","message":{"id":"m1","model":"claude-opus-5-5","usage":{"input_tokens":1,"output_tokens":2}}}"#;
        let fuller = good.replace("\"output_tokens\":2", "\"output_tokens\":5").replace("07:00:00", "07:00:01");
        let synthetic = r#"{"type":"assistant","sessionId":"s","requestId":"r9","timestamp":"2026-12-01T07:00:02.000Z","isApiErrorMessage":true,"message":{"id":"x","model":"<synthetic>","usage":{"input_tokens":0,"output_tokens":0}}}"#;
        let text = format!(
            "{good}\n{{\"type\":\"assistant\",\"sessionId\n[1]\n{fuller}\n{synthetic}\n{{\"type\":\"assistant\",\"message\":{{}}}}\n"
        );
        let p = parse("a.jsonl", &text);
        assert_eq!(p.calls.len(), 1);
        assert_eq!(p.calls[0].usage.output, 5, "the largest usage of the call's lines");
        assert_eq!(p.calls[0].time_us, chrono::DateTime::parse_from_rfc3339("2026-12-01T07:00:01Z").unwrap().timestamp_micros());
        assert_eq!(p.synthetic, 1);
        let lines: Vec<(usize, &str)> = p.skipped.iter().map(|s| (s.line, s.reason.as_str())).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0].0, 2);
        assert!(lines[0].1.contains("truncated"));
        assert_eq!(lines[1], (3, "not a JSON object"));
        assert_eq!(lines[2].0, 6);
    }
}
