//! Data links on the ids of every frame Grafana receives, so a session, prompt or trace id
//! anywhere (tables, logs, raw SQL) opens what it names: a session its Sessions dashboard and
//! its events, a prompt or trace id its trace, a span of the trace view its session's events
//! around it (Grafana's trace view offers the first field with links as the span's logs link).
//! Links into Explore are internal links to the datasource that asked, by its uid.
use serde_json::json;

use crate::frame::{DataLink, Frame, InternalLink, VisType};

/// The bundled Sessions dashboard (`dashboards/sessions.json`) and its session variable.
const SESSIONS_DASHBOARD: &str = "/d/claude-code-sessions/claude-code-sessions?var-session=${__value.raw}&${__url_time_range}";

/// The datasource instance a request came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Datasource {
    pub uid: String,
    pub name: String,
}

impl Datasource {
    fn internal(&self, title: &str, query: serde_json::Value) -> DataLink {
        DataLink {
            title: title.into(),
            url: String::new(),
            internal: Some(InternalLink { datasource_uid: self.uid.clone(), datasource_name: self.name.clone(), query }),
        }
    }

    /// The links for a field of this name, none for other fields.
    fn links_for(&self, field: &str, trace_view: bool) -> Vec<DataLink> {
        let value = "${__value.raw}";
        if trace_view {
            return match field {
                "spanID" => vec![self.internal(
                    "Session events around this span",
                    json!({"queryType": "log_context", "spanId": value, "direction": "around", "limit": 50}),
                )],
                _ => vec![],
            };
        }
        match field {
            "session_id" => vec![
                DataLink { title: "Sessions dashboard".into(), url: SESSIONS_DASHBOARD.into(), internal: None },
                self.internal("Session events", json!({"queryType": "logs", "sessions": value, "limit": 1000})),
            ],
            "prompt_id" => vec![self.internal("Trace of this prompt", json!({"queryType": "trace", "promptId": value}))],
            "trace_id" => vec![self.internal("Trace", json!({"queryType": "trace", "traceId": value}))],
            _ => vec![],
        }
    }
}

/// Adds the links to every field they belong to.
pub fn add(frames: &mut [Frame], ds: &Datasource) {
    for frame in frames {
        let trace_view = frame.meta.preferred_visualisation == Some(VisType::Trace);
        for field in &mut frame.fields {
            field.config.links = ds.links_for(&field.name, trace_view);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Field, Meta};

    #[test]
    fn ids_get_links_to_what_they_name() {
        let ds = Datasource { uid: "abc".into(), name: "Claude Code".into() };
        let fields = ["session_id", "prompt_id", "trace_id", "model"].map(|n| Field::texts(n, [Some("x")]));
        let mut frames = vec![Frame::new("t", Meta::default(), fields.to_vec())];
        add(&mut frames, &ds);
        let links: Vec<Vec<String>> = frames[0].fields.iter().map(|f| f.config.links.iter().map(|l| l.title.clone()).collect()).collect();
        assert_eq!(links, [vec!["Sessions dashboard", "Session events"], vec!["Trace of this prompt"], vec!["Trace"], vec![]]);
        let trace = &frames[0].fields[2].config.links[0];
        let internal = trace.internal.as_ref().unwrap();
        assert_eq!(
            (internal.datasource_uid.as_str(), &internal.query),
            ("abc", &json!({"queryType": "trace", "traceId": "${__value.raw}"}))
        );

        // the trace view: only the span id links (to its session's events)
        let meta = Meta::new(None, Some(VisType::Trace), None);
        let fields = ["traceID", "spanID"].map(|n| Field::texts(n, [Some("x")]));
        let mut frames = vec![Frame::new("trace", meta, fields.to_vec())];
        add(&mut frames, &ds);
        assert!(frames[0].fields[0].config.links.is_empty());
        assert_eq!(frames[0].fields[1].config.links[0].internal.as_ref().unwrap().query["queryType"], "log_context");
    }
}
