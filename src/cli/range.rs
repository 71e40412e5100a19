//! Times on the command line, as a dashboard's time picker takes them: `now`, `now-7d`,
//! `now-12h`, an RFC 3339 time, a date (`2026-11-21` or `20261121`, local midnight in the
//! report's time zone; as an end, the end of that day) or ms since the epoch.
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::query::timezone::local_midnight;

/// Which end of a range a time is: a date as an end means the end of that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Start,
    End,
}

pub fn parse(text: &str, end: End, tz: Tz, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    let bad = || {
        format!("{t:?} is not a time: use now, now-7d, now-12h, now-30m, a date (2026-11-21 or 20261121), an RFC 3339 time or ms since the epoch")
    };
    if let Some(rest) = t.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, amount) = match rest.as_bytes().first() {
            Some(b'-') => (-1, &rest[1..]),
            Some(b'+') => (1, &rest[1..]),
            _ => return Err(bad()),
        };
        let split = amount.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: i32 = amount[..split].parse().map_err(|_| bad())?;
        let unit = match &amount[split..] {
            "s" => Duration::seconds(1),
            "m" => Duration::minutes(1),
            "h" => Duration::hours(1),
            "d" => Duration::days(1),
            "w" => Duration::weeks(1),
            "M" => Duration::days(30),
            "y" => Duration::days(365),
            _ => return Err(bad()),
        };
        return unit.checked_mul(sign * n).and_then(|d| now.checked_add_signed(d)).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(t) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(t, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(t, "%Y%m%d")).ok().filter(|_| t.len() <= 10);
    if let Some(date) = date {
        return Ok(match end {
            End::Start => local_midnight(tz, date),
            End::End => date.succ_opt().map(|next| local_midnight(tz, next) - Duration::milliseconds(1)).unwrap_or(now),
        });
    }
    if let Ok(ms) = t.parse::<i64>() {
        return DateTime::from_timestamp_millis(ms).ok_or_else(bad);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_times_dates_and_epochs() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().with_timezone(&Utc);
        let p = |s: &str, e: End| parse(s, e, chrono_tz::Europe::Berlin, now).unwrap().to_rfc3339();
        assert_eq!(p("now", End::End), "2026-12-01T12:00:00+00:00");
        assert_eq!(p("now-7d", End::Start), "2026-11-24T12:00:00+00:00");
        assert_eq!(p("now-90m", End::Start), "2026-12-01T10:30:00+00:00");
        assert_eq!(p("2026-11-21", End::Start), "2026-11-20T23:00:00+00:00");
        assert_eq!(p("20261121", End::End), "2026-11-21T22:59:59.999+00:00");
        assert_eq!(p("2026-11-21T21:00:00Z", End::Start), "2026-11-21T21:00:00+00:00");
        assert_eq!(p("1795296000000", End::Start), "2026-11-21T21:20:00+00:00");
        let e = parse("yesterday", End::Start, chrono_tz::UTC, now).unwrap_err();
        assert!(e.contains("now-7d"), "{e}");
        // out of range is an error, not an overflow
        assert!(parse("now-2000000000d", End::Start, chrono_tz::UTC, now).is_err());
        assert!(parse("now-99999999999d", End::Start, chrono_tz::UTC, now).is_err());
    }
}
