//! List prices per model: a bundled, dated table, overridden by `prices.json` in the data
//! directory (written by `gpx_claudecode prices update` from a LiteLLM price file) and by a
//! datasource's `prices` setting. They price what Claude Code's own `cost_usd` estimates, for
//! telemetry and imported transcripts alike (`list_cost`), and imported calls, which have no
//! estimate of their own.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the override file in the data directory.
pub const PRICES_FILE: &str = "prices.json";

/// Prompts above this many input tokens (input + cache read + cache write) are billed at a
/// model's long-context rates, for the whole request, as Anthropic's pricing page describes.
pub const LONG_CONTEXT_TOKENS: i64 = 200_000;

/// USD per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    /// Cache writes with the default 5-minute lifetime.
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
}

impl Rates {
    /// Anthropic's multipliers of the input price: read 0.1×, 5-minute write 1.25×, 1-hour 2×.
    fn from_input_output(input: f64, output: f64) -> Rates {
        Rates { input, output, cache_read: input * 0.1, cache_write_5m: input * 1.25, cache_write_1h: input * 2.0 }
    }
}

/// One model's prices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    #[serde(flatten)]
    pub base: Rates,
    /// Rates for prompts over `LONG_CONTEXT_TOKENS`, where the model has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above_200k: Option<Rates>,
    /// Fast mode's multiplier of every rate (`speed` = fast), where the model has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_multiplier: Option<f64>,
}

/// One override as written in `prices.json` or the datasource settings: every field optional;
/// missing ones come from the model's bundled price, or from the input price by Anthropic's
/// multipliers for a model the table does not have.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_read: Option<f64>,
    pub cache_write_5m: Option<f64>,
    pub cache_write_1h: Option<f64>,
    pub above_200k: Option<Rates>,
    pub fast_multiplier: Option<f64>,
}

/// The prices in effect: model → price, with where they came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceTable {
    /// Date of the bundled table, or of the file that replaced it.
    pub as_of: String,
    /// Where the prices come from, latest override last.
    pub sources: Vec<String>,
    pub models: BTreeMap<String, Price>,
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{what} is not valid: {message}")]
    Invalid { what: String, message: String },
}

/// The bundled table: USD per million tokens, Anthropic's list prices on `BUNDLED_AS_OF`.
/// Claude Opus 5.5, Haiku 5.5 and Opus 4.8 are priced as Claude Code 2.1.332 / 2.1.197 price
/// them (their `cost_usd` per call, `tests/import.rs` checks it).
pub const BUNDLED_AS_OF: &str = "2026-12-01";

fn bundled_models() -> BTreeMap<String, Price> {
    let r = |input, output, cache_read, cache_write_5m, cache_write_1h| Rates { input, output, cache_read, cache_write_5m, cache_write_1h };
    let plain = |base: Rates| Price { base, above_200k: None, fast_multiplier: None };
    let sonnet = Price { base: r(3.0, 15.0, 0.3, 3.75, 6.0), above_200k: Some(r(6.0, 22.5, 0.6, 7.5, 12.0)), fast_multiplier: None };
    let opus_4_5 = plain(r(5.0, 25.0, 0.5, 6.25, 10.0));
    let opus_4 = plain(r(15.0, 75.0, 1.5, 18.75, 30.0));
    [
        ("claude-opus-5-5", plain(r(4.0, 20.0, 0.2, 5.0, 8.0))),
        ("claude-haiku-5-5", plain(r(0.1, 0.5, 0.01, 0.125, 0.2))),
        ("claude-opus-4-8", opus_4_5),
        ("claude-opus-4-7", opus_4_5),
        ("claude-opus-4-6", Price { fast_multiplier: Some(6.0), ..opus_4_5 }),
        ("claude-opus-4-5", opus_4_5),
        ("claude-opus-4-1", opus_4),
        ("claude-opus-4", opus_4),
        ("claude-sonnet-4-6", sonnet),
        ("claude-sonnet-4-5", sonnet),
        ("claude-sonnet-4", sonnet),
        ("claude-3-7-sonnet", plain(r(3.0, 15.0, 0.3, 3.75, 6.0))),
        ("claude-3-5-sonnet", plain(r(3.0, 15.0, 0.3, 3.75, 6.0))),
        ("claude-haiku-4-5", plain(r(1.0, 5.0, 0.1, 1.25, 2.0))),
        ("claude-3-5-haiku", plain(r(0.8, 4.0, 0.08, 1.0, 1.6))),
        ("claude-3-haiku", plain(r(0.25, 1.25, 0.03, 0.3, 0.5))),
        ("claude-3-opus", opus_4),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p))
    .collect()
}

/// A model id as Claude Code, Bedrock, Vertex or a gateway writes it, reduced to the table's
/// form: `claude-opus-4-8[1m]`, `us.anthropic.claude-sonnet-4-5-20250929-v1:0`,
/// `claude-opus-4-1@20250805` and `anthropic/claude-haiku-4-5` all name table entries.
pub fn normalize_model(model: &str) -> String {
    let mut m = model.trim().to_ascii_lowercase();
    if let Some(i) = m.find('[') {
        m.truncate(i);
    }
    if let Some(i) = m.rfind('/') {
        m = m[i + 1..].to_string();
    }
    if let Some(i) = m.find("claude") {
        m = m[i..].to_string();
    }
    // Bedrock's version suffix `-v1:0`, Vertex's `@date`
    if let Some(i) = m.rfind("-v").filter(|i| m[i + 2..].chars().all(|c| c.is_ascii_digit() || c == ':') && m.len() > i + 2) {
        m.truncate(i);
    }
    m.replace('@', "-")
}

/// Strips a trailing release date (`-20251001`).
fn without_date(m: &str) -> &str {
    match m.rsplit_once('-') {
        Some((head, date)) if date.len() == 8 && date.chars().all(|c| c.is_ascii_digit()) => head,
        _ => m,
    }
}

impl PriceTable {
    pub fn bundled() -> PriceTable {
        PriceTable { as_of: BUNDLED_AS_OF.into(), sources: vec![format!("bundled ({BUNDLED_AS_OF})")], models: bundled_models() }
    }

    /// The bundled table with the data directory's `prices.json` over it, if there is one.
    pub fn load(data_dir: Option<&Path>) -> Result<PriceTable, PriceError> {
        let mut table = PriceTable::bundled();
        let Some(path) = data_dir.map(|d| d.join(PRICES_FILE)) else {
            return Ok(table);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(table),
            Err(source) => return Err(PriceError::Read { path, source }),
        };
        let file: PriceFile =
            serde_json::from_str(&text).map_err(|e| PriceError::Invalid { what: path.display().to_string(), message: e.to_string() })?;
        table.apply(&file.models, &path.display().to_string())?;
        if let Some(as_of) = file.as_of {
            table.as_of = as_of;
        }
        Ok(table)
    }

    /// Applies overrides (per million tokens), validating every number.
    pub fn apply(&mut self, overrides: &BTreeMap<String, PriceOverride>, source: &str) -> Result<(), PriceError> {
        if overrides.is_empty() {
            return Ok(());
        }
        for (model, o) in overrides {
            let invalid = |message: String| PriceError::Invalid { what: format!("{source}: price of {model:?}"), message };
            let numbers = [o.input, o.output, o.cache_read, o.cache_write_5m, o.cache_write_1h, o.fast_multiplier];
            if numbers.iter().flatten().any(|n| !n.is_finite() || *n < 0.0) {
                return Err(invalid("prices must be finite numbers ≥ 0 (USD per million tokens)".into()));
            }
            let key = normalize_model(model);
            let base = match self.lookup(&key) {
                Some((_, p)) => *p,
                None => {
                    let (Some(input), Some(output)) = (o.input, o.output) else {
                        return Err(invalid("a model the table does not have needs at least \"input\" and \"output\"".into()));
                    };
                    Price { base: Rates::from_input_output(input, output), above_200k: None, fast_multiplier: None }
                }
            };
            let input = o.input.unwrap_or(base.base.input);
            // a new input price moves the cache prices with it unless they are given too
            let derived = if o.input.is_some() { Rates::from_input_output(input, 0.0) } else { base.base };
            let price = Price {
                base: Rates {
                    input,
                    output: o.output.unwrap_or(base.base.output),
                    cache_read: o.cache_read.unwrap_or(derived.cache_read),
                    cache_write_5m: o.cache_write_5m.unwrap_or(derived.cache_write_5m),
                    cache_write_1h: o.cache_write_1h.unwrap_or(derived.cache_write_1h),
                },
                above_200k: o.above_200k.or(base.above_200k),
                fast_multiplier: o.fast_multiplier.or(base.fast_multiplier),
            };
            self.models.insert(key, price);
        }
        self.sources.push(source.to_string());
        Ok(())
    }

    /// The entry pricing `model`, by exact name after normalising, then without a release date.
    pub fn lookup(&self, model: &str) -> Option<(&str, &Price)> {
        let m = normalize_model(model);
        let found = self.models.get_key_value(m.as_str()).or_else(|| self.models.get_key_value(without_date(&m)));
        found.map(|(k, p)| (k.as_str(), p))
    }

    /// Cost of one call in USD, or None when the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage, fast: bool) -> Option<f64> {
        let (_, price) = self.lookup(model)?;
        let prompt = usage.input + usage.cache_read + usage.cache_creation;
        let rates = match price.above_200k {
            Some(long) if prompt > LONG_CONTEXT_TOKENS => long,
            _ => price.base,
        };
        let one_hour = usage.cache_creation_1h.clamp(0, usage.cache_creation);
        let per_million = usage.input as f64 * rates.input
            + usage.output as f64 * rates.output
            + usage.cache_read as f64 * rates.cache_read
            + (usage.cache_creation - one_hour) as f64 * rates.cache_write_5m
            + one_hour as f64 * rates.cache_write_1h;
        let multiplier = if fast { price.fast_multiplier.unwrap_or(1.0) } else { 1.0 };
        Some(per_million / 1e6 * multiplier)
    }

    /// Writes the table's models as the data directory's `prices.json`.
    pub fn save(&self, data_dir: &Path) -> Result<PathBuf, PriceError> {
        let path = data_dir.join(PRICES_FILE);
        let file = serde_json::json!({"as_of": self.as_of, "models": self.models});
        let text = serde_json::to_string_pretty(&file).unwrap_or_default();
        std::fs::create_dir_all(data_dir).map_err(|source| PriceError::Write { path: path.clone(), source })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| PriceError::Write { path: path.clone(), source })?;
        Ok(path)
    }

    /// The Claude models of a LiteLLM `model_prices_and_context_window.json` (USD per token),
    /// merged over this table; returns the models added or changed.
    pub fn update_from_litellm(&mut self, json: &str, source: &str) -> Result<Vec<String>, PriceError> {
        let invalid = |message: String| PriceError::Invalid { what: source.to_string(), message };
        let entries: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| invalid(format!("not a LiteLLM price file (a JSON object of models): {e}")))?;
        let mut changed = Vec::new();
        let mut seen = 0;
        for (name, entry) in &entries {
            let provider = entry.get("litellm_provider").and_then(|v| v.as_str()).unwrap_or("");
            if !name.contains("claude") || !(provider.is_empty() || provider == "anthropic") {
                continue;
            }
            let per_m = |key: &str| entry.get(key).and_then(|v| v.as_f64()).filter(|v| v.is_finite() && *v >= 0.0).map(|v| v * 1e6);
            if per_m("input_cost_per_token").is_none() || per_m("output_cost_per_token").is_none() {
                continue;
            }
            seen += 1;
            let rates = |suffix: &str, base: Option<Rates>| -> Option<Rates> {
                let input = per_m(&format!("input_cost_per_token{suffix}"))?;
                let output = per_m(&format!("output_cost_per_token{suffix}"))?;
                let d = base.unwrap_or_else(|| Rates::from_input_output(input, output));
                let write_5m = per_m(&format!("cache_creation_input_token_cost{suffix}"));
                Some(Rates {
                    input,
                    output,
                    cache_read: per_m(&format!("cache_read_input_token_cost{suffix}")).unwrap_or(d.cache_read),
                    cache_write_5m: write_5m.unwrap_or(d.cache_write_5m),
                    cache_write_1h: per_m(&format!("cache_creation_input_token_cost_above_1hr{suffix}"))
                        .unwrap_or_else(|| write_5m.map(|w| w / 1.25 * 2.0).unwrap_or(d.cache_write_1h)),
                })
            };
            let Some(base) = rates("", None) else { continue };
            let long = rates("_above_200k_tokens", None);
            let fast = entry.get("provider_specific_entry").and_then(|p| p.get("fast")).and_then(|v| v.as_f64()).filter(|f| *f > 0.0);
            let price = Price { base, above_200k: long, fast_multiplier: fast };
            let key = normalize_model(name);
            let key = without_date(&key).to_string();
            if self.models.get(&key) != Some(&price) {
                self.models.insert(key.clone(), price);
                changed.push(key);
            }
        }
        if seen == 0 {
            return Err(invalid("no Claude model with input_cost_per_token and output_cost_per_token in it".into()));
        }
        changed.sort();
        changed.dedup();
        self.as_of = chrono::Utc::now().format("%Y-%m-%d").to_string();
        self.sources.push(source.to_string());
        Ok(changed)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    as_of: Option<String>,
    models: BTreeMap<String, PriceOverride>,
}

/// The token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    /// All cache writes; `cache_creation_1h` of them with the 1-hour lifetime.
    pub cache_creation: i64,
    pub cache_creation_1h: i64,
}

impl Usage {
    pub fn total(&self) -> i64 {
        self.input + self.output + self.cache_read + self.cache_creation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_of_every_provider_find_their_entry() {
        let t = PriceTable::bundled();
        for (id, entry) in [
            ("claude-opus-4-8[1m]", "claude-opus-4-8"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
            ("claude-opus-4-1@20250805", "claude-opus-4-1"),
            ("anthropic/claude-opus-5-5", "claude-opus-5-5"),
            ("Claude-Haiku-5-5", "claude-haiku-5-5"),
        ] {
            assert_eq!(t.lookup(id).map(|(k, _)| k), Some(entry), "{id}");
        }
        assert!(t.lookup("gpt-5").is_none());
        assert!(t.lookup("claude-opus-9-9").is_none());
    }

    #[test]
    fn cache_lifetimes_long_context_and_fast_mode_are_priced() {
        let t = PriceTable::bundled();
        // Claude Code 2.1.332's own cost of a subagent run's first call: 0.019364
        let u = Usage { input: 21, output: 64, cache_read: 0, cache_creation: 3000, cache_creation_1h: 1000 };
        assert!((t.cost("claude-opus-5-5", &u, false).unwrap() - 0.019364).abs() < 1e-12);
        // over 200k prompt tokens the whole call is at the long-context rates
        let long = Usage { input: 150_000, output: 1000, cache_read: 60_000, cache_creation: 0, cache_creation_1h: 0 };
        let expected = (150_000.0 * 6.0 + 1000.0 * 22.5 + 60_000.0 * 0.6) / 1e6;
        assert!((t.cost("claude-sonnet-4-5", &long, false).unwrap() - expected).abs() < 1e-12);
        let short = Usage { input: 1000, output: 100, ..Usage::default() };
        assert!((t.cost("claude-opus-4-6", &short, true).unwrap() - 6.0 * (1000.0 * 5.0 + 100.0 * 25.0) / 1e6).abs() < 1e-12);
        assert_eq!(t.cost("claude-opus-4-8", &short, true), t.cost("claude-opus-4-8", &short, false), "no fast price: the base one");
        assert_eq!(t.cost("mystery-model", &short, false), None);
    }

    #[test]
    fn overrides_replace_parts_and_add_models() {
        let mut t = PriceTable::bundled();
        let o: BTreeMap<String, PriceOverride> = serde_json::from_value(serde_json::json!({
            "claude-opus-4-8": {"output": 30},
            "acme-model": {"input": 2, "output": 8},
        }))
        .unwrap();
        t.apply(&o, "datasource settings").unwrap();
        let opus = t.lookup("claude-opus-4-8").unwrap().1;
        assert_eq!((opus.base.input, opus.base.output, opus.base.cache_read), (5.0, 30.0, 0.5));
        let acme = t.lookup("acme-model").unwrap().1.base;
        assert_eq!(acme, Rates { input: 2.0, output: 8.0, cache_read: 0.2, cache_write_5m: 2.5, cache_write_1h: 4.0 });
        assert_eq!(t.sources.last().map(String::as_str), Some("datasource settings"));
        let bad: BTreeMap<String, PriceOverride> = serde_json::from_value(serde_json::json!({"new-model": {"output": 1}})).unwrap();
        let e = t.apply(&bad, "prices.json").unwrap_err().to_string();
        assert!(e.contains("\"new-model\"") && e.contains("\"input\" and \"output\""), "{e}");
        let negative: BTreeMap<String, PriceOverride> =
            serde_json::from_value(serde_json::json!({"claude-opus-4-8": {"input": -1}})).unwrap();
        assert!(t.apply(&negative, "x").unwrap_err().to_string().contains("≥ 0"));
        assert!(serde_json::from_value::<PriceOverride>(serde_json::json!({"inptu": 1})).is_err(), "a misspelt field is an error");
    }

    #[test]
    fn a_litellm_file_updates_the_claude_models() {
        let litellm = serde_json::json!({
            "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0},
            "claude-opus-4-8": {"litellm_provider": "anthropic", "input_cost_per_token": 6e-06, "output_cost_per_token": 3e-05,
                "cache_read_input_token_cost": 6e-07, "cache_creation_input_token_cost": 7.5e-06, "cache_creation_input_token_cost_above_1hr": 1.2e-05},
            "claude-sonnet-4-7-20260101": {"litellm_provider": "anthropic", "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                "input_cost_per_token_above_200k_tokens": 6e-06, "output_cost_per_token_above_200k_tokens": 2.25e-05,
                "provider_specific_entry": {"fast": 2.0}},
            "bedrock/claude-x": {"litellm_provider": "bedrock", "input_cost_per_token": 1.0, "output_cost_per_token": 1.0},
            "gpt-5": {"litellm_provider": "openai", "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05}
        });
        let mut t = PriceTable::bundled();
        let changed = t.update_from_litellm(&litellm.to_string(), "litellm.json").unwrap();
        assert_eq!(changed, ["claude-opus-4-8", "claude-sonnet-4-7"]);
        let opus = t.lookup("claude-opus-4-8").unwrap().1.base;
        assert!((opus.input - 6.0).abs() < 1e-9 && (opus.cache_write_1h - 12.0).abs() < 1e-9);
        let sonnet = t.lookup("claude-sonnet-4-7-20260101").unwrap().1;
        assert!((sonnet.above_200k.unwrap().input - 6.0).abs() < 1e-9 && sonnet.fast_multiplier == Some(2.0));
        assert!((sonnet.base.cache_write_5m - 3.75).abs() < 1e-9, "missing cache prices follow Anthropic's multipliers");
        assert!(t.lookup("claude-x").is_none(), "other providers' entries are not list prices");
        assert!(t.update_from_litellm("{\"gpt-5\": {}}", "x.json").unwrap_err().to_string().contains("no Claude model"));
        assert!(t.update_from_litellm("[1]", "x.json").unwrap_err().to_string().contains("not a LiteLLM price file"));
    }

    #[test]
    fn the_data_directory_file_is_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(PriceTable::load(Some(dir.path())).unwrap(), PriceTable::bundled());
        let mut t = PriceTable::bundled();
        t.update_from_litellm(
            &serde_json::json!({"claude-new-1": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}).to_string(),
            "l.json",
        )
        .unwrap();
        t.save(dir.path()).unwrap();
        let loaded = PriceTable::load(Some(dir.path())).unwrap();
        assert_eq!(loaded.models, t.models);
        std::fs::write(dir.path().join(PRICES_FILE), "{\"models\": 3}").unwrap();
        assert!(PriceTable::load(Some(dir.path())).unwrap_err().to_string().contains("prices.json is not valid"));
    }
}
