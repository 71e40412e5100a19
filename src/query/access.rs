//! Who may read content (prompts, responses, tool details, commands, file paths, raw API bodies,
//! error messages: `store::masked`). A datasource names the lowest Grafana role that may
//! (`contentRole`, default Admin); everyone else gets every query's answer over the masked views,
//! and a search or filter over content is refused rather than answered from them.
use serde_json::Value;

use super::filters::Filters;
use super::model::{ParsedQuery, Query};
use super::QueryError;
use crate::store::masked::{self, Access};

/// A Grafana organisation role, lowest first. Grafana's "No basic role", a missing user and
/// anything unknown are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Role {
    #[default]
    None,
    Viewer,
    Editor,
    Admin,
}

impl Role {
    /// The role as Grafana sends it in a request's user (`Viewer`, `Editor`, `Admin`).
    pub fn from_grafana(role: &str) -> Role {
        match role.trim().to_ascii_lowercase().as_str() {
            "admin" => Role::Admin,
            "editor" => Role::Editor,
            "viewer" => Role::Viewer,
            _ => Role::None,
        }
    }

    /// A setting's value: one of the three roles.
    pub fn parse_setting(value: &str) -> Result<Role, String> {
        match Role::from_grafana(value) {
            Role::None => Err(format!("{value:?} is not a Grafana role: use Viewer, Editor or Admin")),
            role => Ok(role),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::None => "No basic role",
            Role::Viewer => "Viewer",
            Role::Editor => "Editor",
            Role::Admin => "Admin",
        }
    }
}

/// The lowest role that reads content when nothing says otherwise.
pub const DEFAULT_CONTENT_ROLE: Role = Role::Admin;

/// A datasource's `contentRole` (jsonData), if set.
pub fn content_role_setting(json: &Value) -> Result<Option<Role>, String> {
    match json.get("contentRole") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Role::parse_setting(s)
            .map(Some)
            .map_err(|e| format!("the datasource's Content setting (contentRole) {e}; fix it in the datasource settings")),
        Some(other) => Err(format!("the datasource's Content setting (contentRole) {other} is not a role: use Viewer, Editor or Admin")),
    }
}

/// What `reader` reads when content is for `content_role` and above.
pub fn access(reader: Role, content_role: Role) -> Access {
    if reader >= content_role {
        Access::Content
    } else {
        Access::Masked
    }
}

/// Why a query that searches or filters content is refused for a reader without access.
fn refusal(what: &str, content_role: Role) -> QueryError {
    QueryError::Invalid(format!(
        "{what}: this datasource shows prompts, responses, tool details, commands, file paths and error messages to {}s and above \
         only (its Content setting), so it cannot search or filter them for you; filter by event, tool, model, user or session instead",
        content_role.name()
    ))
}

/// Refuses what would search or filter content; the rest runs over the masked views.
pub fn check_masked(parsed: &ParsedQuery, content_role: Role) -> Result<(), QueryError> {
    check_filters(&parsed.filters, content_role)?;
    let search = match &parsed.query {
        Query::Logs(q) | Query::LogsVolume(q) => q.search.as_deref(),
        Query::Variable(q) => return check_variable_key(&q.key, content_role),
        _ => None,
    };
    if search.is_some_and(|s| !s.trim().is_empty()) {
        return Err(refusal("text search reads content", content_role));
    }
    Ok(())
}

/// A variable's values of a content key would all be the marker: refused instead.
pub fn check_variable_key(key: &str, content_role: Role) -> Result<(), QueryError> {
    if masked::is_content(key) {
        return Err(refusal(&format!("the values of {key:?} are content"), content_role));
    }
    Ok(())
}

fn check_filters(filters: &Filters, content_role: Role) -> Result<(), QueryError> {
    match filters.adhoc_filters.iter().find(|f| masked::is_content(&f.key)) {
        Some(f) => Err(refusal(&format!("the filter on {:?} reads content", f.key), content_role)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Admin > Role::Editor && Role::Editor > Role::Viewer && Role::Viewer > Role::None);
        assert_eq!(Role::from_grafana("Editor"), Role::Editor);
        assert_eq!(Role::from_grafana("None"), Role::None);
        assert_eq!(Role::from_grafana(""), Role::None);
        assert!(Role::parse_setting("Owner").unwrap_err().contains("Viewer, Editor or Admin"));
        assert_eq!(access(Role::Editor, Role::Editor), Access::Content);
        assert_eq!(access(Role::Viewer, Role::Editor), Access::Masked);
        assert_eq!(access(Role::None, Role::Viewer), Access::Masked);
        assert_eq!(content_role_setting(&serde_json::json!({"contentRole": "Viewer"})), Ok(Some(Role::Viewer)));
        assert_eq!(content_role_setting(&serde_json::json!({})), Ok(None));
        assert!(content_role_setting(&serde_json::json!({"contentRole": 3})).is_err());
    }

    #[test]
    fn searching_or_filtering_content_is_refused_with_the_role_that_may() {
        let parse = |q: Value| super::super::model::parse(&q, "").unwrap();
        let e = check_masked(&parse(serde_json::json!({"queryType": "logs", "search": "password"})), Role::Editor).unwrap_err();
        assert!(e.to_string().contains("Editors and above"), "{e}");
        let filtered =
            serde_json::json!({"queryType": "logs", "adhocFilters": [{"key": "tool_parameters", "operator": "=~", "value": ".*"}]});
        assert!(check_masked(&parse(filtered), Role::Admin).unwrap_err().to_string().contains("\"tool_parameters\""));
        assert!(check_masked(
            &parse(serde_json::json!({"queryType": "logs", "adhocFilters": [{"key": "tool_name", "value": "Bash"}]})),
            Role::Admin
        )
        .is_ok());
        assert!(check_masked(&parse(serde_json::json!({"queryType": "logs"})), Role::Admin).is_ok());
    }
}
