//! Events as logs for Explore: the log lines, their volume per level over time (Explore's
//! histogram above the lines) and a line's context (the events before and after it in its
//! session). All three share one row filter and one severity rule.
use chrono::{DateTime, Utc};

use super::filters::Table;
use super::model::{ContextDirection, LiveQuery, LogContextQuery, LogsQuery};
use super::series::{pivot, Fill, Grid};
use super::sql::{Params, Sql};
use super::table::{unit_for, Units};
use super::{QueryError, Runner};
use crate::frame::{Field, Frame, FrameType, Kind, Meta, VisType};
use crate::store::live::LiveEvent;
use crate::store::masked::Access;

/// An event's level: error for failed calls and tools, warning for refusals and rejections.
/// Filters accept it as the key `severity` (or `level`), as Explore's "filter for" sends it.
pub const SEVERITY_SQL: &str =
    "CASE WHEN event_name IN ('api_error', 'api_retries_exhausted', 'internal_error') OR success = false THEN 'error'
        WHEN event_name = 'api_refusal' OR decision = 'reject' THEN 'warning'
        ELSE 'info' END";

/// The levels the volume reports, in the order Explore stacks them.
const LEVELS: [&str; 3] = ["error", "warning", "info"];

/// `%text%` for ILIKE … ESCAPE '\', with the user's wildcards taken literally.
fn like_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// The `AND …` conditions of a logs query: event names, free text, the shared filters.
fn conditions(r: &Runner, q: &LogsQuery, p: &mut Params) -> Result<String, QueryError> {
    let mut conditions = String::new();
    let names: Vec<String> =
        q.event_names.iter().map(|n| n.trim().trim_start_matches("claude_code.").to_string()).filter(|n| !n.is_empty()).collect();
    if !names.is_empty() {
        conditions.push_str(&format!(" AND event_name IN ({})", p.bind_list(&names)));
    }
    if let Some(text) = q.search.as_deref().filter(|t| !t.is_empty()) {
        let k = p.bind(like_pattern(text));
        conditions.push_str(&format!(
            " AND (prompt ILIKE {k} ESCAPE '\\' OR error ILIKE {k} ESCAPE '\\' OR tool_parameters ILIKE {k} ESCAPE '\\' \
             OR json_extract_string(attributes, 'response') ILIKE {k} ESCAPE '\\')"
        ));
    }
    conditions.push_str(&r.filters.clause(Table::Events, p)?);
    Ok(conditions)
}

/// The columns of a log line: `timestamp`, `body`, `severity`, `id`, `labels` (the event's
/// resource and attributes, every one, as JSON), then the ids and names a table of the events
/// shows and `event_sequence`, which orders a session's events (log context).
fn line_columns() -> String {
    format!(
        "time AS timestamp,
    concat_ws(' ', event_name, 'model=' || model, 'tool=' || tool_name, 'decision=' || decision,
        'source=' || source, 'success=' || CAST(success AS VARCHAR), 'status=' || CAST(status_code AS VARCHAR),
        'cost_usd=' || CAST(cost_usd AS VARCHAR), 'duration_ms=' || CAST(duration_ms AS VARCHAR),
        'error=' || error, 'prompt=' || prompt) AS body,
    {SEVERITY_SQL} AS severity,
    CAST(rowid AS VARCHAR) AS id,
    json_merge_patch(resource, {attributes}::JSON)::VARCHAR AS labels,
    event_name, session_id, prompt_id, trace_id, user_id, model, tool_name, event_sequence",
        attributes = crate::store::schema::full_attributes_sql("events")
    )
}

/// Runs log-line SQL into a `log-lines` frame.
fn lines_frame(r: &Runner, name: &str, sql: Sql) -> Result<Vec<Frame>, QueryError> {
    let t = sql.run(r.conn)?.json(&["labels"]);
    let mut meta = Meta::new(Some(FrameType::LogLines), Some(VisType::Logs), Some(sql.describe()));
    let rows = t.rows();
    meta.notices = t.notices;
    if rows == 0 {
        return Ok(vec![Frame::no_data(name, meta)]);
    }
    let with_unit = |f: Field| {
        let unit = (f.kind() == Kind::Number).then(|| unit_for(&f.name));
        if unit.is_some() {
            f.with_unit(unit)
        } else {
            f
        }
    };
    let fields = t.fields.into_iter().map(with_unit).collect();
    Ok(vec![Frame::new(name, meta, fields)])
}

/// Events as a data-plane `log-lines` frame, newest first.
pub fn logs(r: &Runner, q: &LogsQuery) -> Result<Vec<Frame>, QueryError> {
    let mut p = r.params();
    let conditions = conditions(r, q, &mut p)?;
    let limit = p.bind(i64::from(q.limit));
    let text = format!(
        "
SELECT {columns}
FROM events
WHERE time BETWEEN $1 AND $2{conditions}
ORDER BY time DESC, event_sequence DESC
LIMIT {limit}",
        columns = line_columns()
    );
    lines_frame(r, "logs", p.into_sql(text))
}

/// How many events of a logs query fall in each bucket, per level: one `timeseries-multi`
/// frame per level (time, `count` labelled `level`), the shape Explore's logs volume colours
/// by level. Every bucket of the range is present; no events at all is "no data".
pub fn volume(r: &Runner, q: &LogsQuery) -> Result<Vec<Frame>, QueryError> {
    let mut p = r.params();
    let conditions = conditions(r, q, &mut p)?;
    let bucket_us = r.ctx.bucket_us();
    let b = p.bind(bucket_us);
    let text = format!(
        "
SELECT make_timestamp((epoch_us(time) // {b}) * {b}) AS time, {SEVERITY_SQL} AS level, count(*) AS count
FROM events
WHERE time BETWEEN $1 AND $2{conditions}
GROUP BY ALL
ORDER BY time, level"
    );
    let sql = p.into_sql(text);
    let t = sql.run(r.conn)?;
    let grid = Grid::covering(r.ctx.from, r.ctx.to, bucket_us);
    let fields = pivot(&t, grid, Fill::Value(0.0), Units::ByName)?;
    let meta = || Meta::new(Some(FrameType::TimeSeriesMulti), Some(VisType::Graph), Some(sql.describe()));
    let Some(time) = fields.first().filter(|_| fields.len() > 1) else {
        return Ok(vec![Frame::no_data("logs_volume", meta())]);
    };
    let mut frames = Vec::new();
    for level in LEVELS {
        if let Some(count) = fields.iter().find(|f| f.labels.get("level").map(String::as_str) == Some(level)) {
            frames.push(Frame::new(level, meta(), vec![time.clone(), count.clone().with_unit(Some("short"))]));
        }
    }
    Ok(frames)
}

/// A time in epoch milliseconds (fractions kept to the µs the store holds) as a timestamp.
fn anchor_time(ms: f64) -> Result<DateTime<Utc>, QueryError> {
    let us = (ms * 1_000.0).round();
    if !us.is_finite() || us.abs() > 9.0e18 {
        return Err(format!("time: {ms} is not a time in epoch milliseconds").into());
    }
    DateTime::from_timestamp_micros(us as i64).ok_or_else(|| format!("time: {ms} is out of range").into())
}

/// The session and start (µs) of a span, `None` when no span has that id; and the SQL run.
fn span_anchor(r: &Runner, span_id: &str) -> Result<(Option<(String, i64)>, String), QueryError> {
    let mut p = Params::empty();
    let k = p.bind(span_id.to_ascii_lowercase());
    let sql = p.into_sql(format!(
        "SELECT session_id, epoch_us(start_time) AS start_us FROM spans WHERE span_id = {k} AND session_id IS NOT NULL LIMIT 1"
    ));
    let t = sql.run(r.conn)?;
    let session = t.column("session_id").and_then(|c| c.text(0)).map(str::to_string);
    let start = t.column("start_us").and_then(|c| c.number(0)).map(|us| us as i64);
    Ok((session.zip(start), sql.describe()))
}

/// The events of one session before and/or after a point in it, whatever the dashboard's range:
/// Explore's log context and a span's "events around it". The point is a time (epoch ms) and,
/// for an event, its `event.sequence`, which orders events of the same millisecond; the event
/// itself is not part of its context. A span stands for its session and start. `before` comes
/// newest first, `after` oldest first; `around` gives both, the events at the point itself
/// among the later ones.
pub fn context(r: &Runner, q: &LogContextQuery) -> Result<Vec<Frame>, QueryError> {
    let given = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let (session, time) = match (given(&q.span_id), given(&q.session_id), q.time) {
        (Some(span), _, _) => match span_anchor(r, &span)? {
            (Some((session, us)), _) => (session, us as f64 / 1_000.0),
            (None, executed) => {
                let meta = Meta::new(Some(FrameType::LogLines), Some(VisType::Logs), Some(executed));
                return Ok(vec![Frame::no_data("log_context", meta)]);
            }
        },
        (None, Some(session), Some(time)) => (session, time),
        _ => return Err("log_context needs sessionId and time (epoch ms), or spanId".into()),
    };
    let mut p = Params::empty();
    let session = p.bind(session);
    let t = p.bind(anchor_time(time)?);
    let limit = p.bind(i64::from(q.limit.clamp(1, 5_000)));
    // (time, sequence) compared as a pair when the point has a sequence
    let (earlier, later, at_or_later) = match q.sequence {
        Some(seq) => {
            let s = p.bind(seq);
            (
                format!("(time, coalesce(event_sequence, -1)) < ({t}, {s})"),
                format!("(time, coalesce(event_sequence, -1)) > ({t}, {s})"),
                format!("(time, coalesce(event_sequence, -1)) >= ({t}, {s})"),
            )
        }
        None => (format!("time < {t}"), format!("time > {t}"), format!("time >= {t}")),
    };
    let filter = r.filters.clause(Table::Events, &mut p)?;
    let part = |condition: &str, order: &str| {
        format!(
            "(SELECT {columns} FROM events WHERE session_id = {session} AND {condition}{filter} \
             ORDER BY time {order}, coalesce(event_sequence, -1) {order}, rowid {order} LIMIT {limit})",
            columns = line_columns()
        )
    };
    let text = match q.direction {
        ContextDirection::Before => part(&earlier, "DESC"),
        ContextDirection::After => part(&later, "ASC"),
        ContextDirection::Around => format!(
            "SELECT * FROM ({}\nUNION ALL\n{}) ORDER BY timestamp DESC, coalesce(event_sequence, -1) DESC",
            part(&earlier, "DESC"),
            part(&at_or_later, "ASC")
        ),
    };
    lines_frame(r, "log_context", p.into_sql(text))
}

/// The channel path of a live tail: `tail` (every event) or `tail/<session id>`.
pub fn tail_path(session_id: Option<&str>, access: Access) -> Result<String, QueryError> {
    // one channel's packets go to every subscriber: content and masked lines have their own
    let prefix = match access {
        Access::Content => CONTENT_TAIL,
        Access::Masked => "tail",
    };
    match session_id.map(str::trim).filter(|s| !s.is_empty() && *s != "$__all") {
        None => Ok(prefix.into()),
        // Grafana Live channel paths allow these characters only
        Some(s) if s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-=.".contains(c)) => Ok(format!("{prefix}/{s}")),
        Some(s) => Err(format!("sessionId {s:?}: a live tail follows a session id (letters, digits, '-', '_', '.', '=')").into()),
    }
}

/// The channel path of tails with content; `tail` ones have it hidden.
pub const CONTENT_TAIL: &str = "content/tail";

/// A live tail: no lines yet, the log-lines fields, and the channel (relative to the
/// datasource) whose packets append the events committed from now on (`live_frame`).
pub fn live(q: &LiveQuery, access: Access) -> Result<Vec<Frame>, QueryError> {
    let mut frame = live_frame(&[]);
    frame.meta.channel = Some(tail_path(q.session_id.as_deref(), access)?);
    Ok(vec![frame])
}

/// Committed events as the `logs` query's lines, oldest first. `id` is the session, sequence
/// and time (a live line has no row yet to name).
pub fn live_frame(events: &[LiveEvent]) -> Frame {
    let text = |f: fn(&LiveEvent) -> Option<&str>| events.iter().map(f).collect::<Vec<_>>();
    let fields = vec![
        Field::times("timestamp", events.iter().map(|e| e.time_us.saturating_mul(1_000)).collect()),
        Field::texts("body", text(|e| Some(&e.body))),
        Field::texts("severity", text(|e| Some(e.severity))),
        Field::texts(
            "id",
            events
                .iter()
                .map(|e| Some(format!("{}:{}:{}", e.session_id.as_deref().unwrap_or(""), e.event_sequence.unwrap_or(-1), e.time_us))),
        ),
        Field::json_documents("labels", &events.iter().map(|e| Some(e.labels.as_str())).collect::<arrow::array::StringArray>()),
        Field::texts("event_name", text(|e| Some(&e.event_name))),
        Field::texts("session_id", text(|e| e.session_id.as_deref())),
        Field::texts("prompt_id", text(|e| e.prompt_id.as_deref())),
        Field::texts("trace_id", text(|e| e.trace_id.as_deref())),
        Field::texts("user_id", text(|e| e.user_id.as_deref())),
        Field::texts("model", text(|e| e.model.as_deref())),
        Field::texts("tool_name", text(|e| e.tool_name.as_deref())),
        Field::integers("event_sequence", events.iter().map(|e| e.event_sequence).collect()).with_unit(Some(unit_for("event_sequence"))),
    ];
    Frame::new("live", Meta::new(Some(FrameType::LogLines), Some(VisType::Logs), Some("live tail".into())), fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn anchor_times_keep_microseconds_and_refuse_nonsense() {
        assert_eq!(anchor_time(1_700_000_000_123.456).unwrap().timestamp_micros(), 1_700_000_000_123_456);
        assert!(anchor_time(f64::NAN).is_err());
        assert!(anchor_time(1e30).is_err());
    }
}
