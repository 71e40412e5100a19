//! List prices in SQL: each `api_request` row's cost at the prices in effect (`list_cost`).
//! The models of the range are read first and resolved against the price table here, so the
//! SQL holds one `CASE` branch per model with bound rates, and a model without a price is named
//! in a notice instead of silently counting as 0.
use super::sql::Params;
use super::{QueryError, Runner};
use crate::prices::{Rates, LONG_CONTEXT_TOKENS};

/// Tokens written to the 1-hour cache of a row (2.1.332 and later send the split; without it
/// every write counts at the 5-minute price, Claude Code's default lifetime).
const ONE_HOUR_WRITES: &str = "least(coalesce(cache_creation_1h_tokens, 0), coalesce(cache_creation_tokens, 0))";

fn rates_sql(rates: &Rates, p: &mut Params) -> String {
    let mut rate = |per_million: f64| p.bind(per_million / 1e6);
    format!(
        "(coalesce(input_tokens, 0) * {} + coalesce(output_tokens, 0) * {} + coalesce(cache_read_tokens, 0) * {} \
         + (coalesce(cache_creation_tokens, 0) - ({ONE_HOUR_WRITES})) * {} + ({ONE_HOUR_WRITES}) * {})",
        rate(rates.input),
        rate(rates.output),
        rate(rates.cache_read),
        rate(rates.cache_write_5m),
        rate(rates.cache_write_1h),
    )
}

impl Runner<'_> {
    /// The models `api_request` rows name from one range length before `from` (a stat's
    /// previous period) to `to`.
    fn request_models(&self) -> Result<Vec<String>, QueryError> {
        let span = self.ctx.to - self.ctx.from;
        let (from, to) = (self.ctx.from - span, self.ctx.to);
        let sql = if self.settings.rollups {
            // the models of the API outcomes rollup: hours, not every call of the range
            let cov = super::rollup::coverage_of(self, from.timestamp_micros(), to.timestamp_micros())?;
            let mut p = Params::empty();
            let parts = super::rollup::parts_sql(&crate::store::rollup::API_OUTCOMES, &cov, &mut p);
            p.into_sql(format!("SELECT DISTINCT model FROM ({parts}) WHERE event_name = 'api_request' AND model IS NOT NULL ORDER BY 1"))
        } else {
            Params::with_range(from, to).into_sql(
                "SELECT DISTINCT model FROM events WHERE event_name = 'api_request' AND time BETWEEN $1 AND $2 AND model IS NOT NULL ORDER BY 1",
            )
        };
        let t = sql.run(self.conn)?;
        let models = t.column("model").map(|f| (0..t.rows()).filter_map(|r| f.text(r).map(str::to_string)).collect()).unwrap_or_default();
        Ok(models)
    }

    /// SQL of one `events` row's list cost (NULL for a model without a price); notes a notice
    /// naming the models without one.
    pub fn list_cost_row_sql(&self, p: &mut Params) -> Result<String, QueryError> {
        let prices = &self.settings.prices;
        let mut branches = Vec::new();
        let mut unpriced = Vec::new();
        for model in self.request_models()? {
            let Some((_, price)) = prices.lookup(&model) else {
                unpriced.push(model);
                continue;
            };
            let base = rates_sql(&price.base, p);
            let tiered = match &price.above_200k {
                Some(long) => format!(
                    "CASE WHEN coalesce(input_tokens, 0) + coalesce(cache_read_tokens, 0) + coalesce(cache_creation_tokens, 0) > {limit} THEN {long} ELSE {base} END",
                    limit = p.bind(LONG_CONTEXT_TOKENS),
                    long = rates_sql(long, p),
                ),
                None => base,
            };
            let fast = match price.fast_multiplier {
                Some(m) => format!(" * CASE WHEN speed = 'fast' THEN {} ELSE 1 END", p.bind(m)),
                None => String::new(),
            };
            branches.push(format!("WHEN {} THEN ({tiered}){fast}", p.bind(model.as_str())));
        }
        if !unpriced.is_empty() {
            self.notice(format!(
                "no list price for {}: their calls are left out of list cost; add the model{} to the datasource's Prices setting or run `gpx_claudecode prices update FILE`",
                unpriced.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", "),
                if unpriced.len() > 1 { "s" } else { "" },
            ));
        }
        if branches.is_empty() {
            return Ok("CAST(NULL AS DOUBLE)".into());
        }
        Ok(format!("(CASE model {} END)", branches.join(" ")))
    }
}
