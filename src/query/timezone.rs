//! Local time in SQL without DuckDB's ICU extension (the static binaries have only core and
//! JSON): the zone's UTC offsets over the query range are worked out here with the tz database
//! (`chrono-tz`), one segment per daylight-saving change, and bound into a `CASE` that turns a
//! stored UTC `TIMESTAMP` into local wall time. Days, weeks and months are then truncated in SQL.
use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::sql::Params;

/// A time zone a query may name: an IANA name (`Europe/Berlin`), `UTC`, or `local` (this
/// machine's zone, for terminal reports).
pub fn parse(name: &str) -> Result<Tz, String> {
    let name = name.trim();
    if name.is_empty() || name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Ok(Tz::UTC);
    }
    if name.eq_ignore_ascii_case("local") {
        return Ok(local());
    }
    name.parse::<Tz>().map_err(|_| {
        format!("timezone {name:?} is not an IANA time zone: use a name such as Europe/Berlin, America/New_York, Asia/Tokyo or UTC")
    })
}

/// This machine's zone: `TZ` when it names one, else the system's; UTC when neither is known.
pub fn local() -> Tz {
    std::env::var("TZ")
        .ok()
        .and_then(|tz| tz.trim_start_matches(':').parse::<Tz>().ok())
        .or_else(|| iana_time_zone::get_timezone().ok().and_then(|name| name.parse::<Tz>().ok()))
        .unwrap_or(Tz::UTC)
}

fn offset_seconds(tz: Tz, at: DateTime<Utc>) -> i64 {
    i64::from(tz.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc())
}

/// The zone's offsets from `from` to `to`: `(start, seconds east of UTC)`, the first starting
/// at `from`. Offsets are sampled daily and each change is narrowed to the second (zones change
/// at most twice a year, never twice a day).
pub fn offsets(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, i64)> {
    // the tz database's useful span; beyond it offsets stay as they are
    let floor = DateTime::from_timestamp(0, 0).unwrap_or(from);
    let ceiling = DateTime::from_timestamp(4_102_444_800, 0).unwrap_or(to); // 2100-01-01
    let (from, to) = (from.max(floor), to.min(ceiling));
    let mut segments = vec![(from, offset_seconds(tz, from))];
    let mut at = from;
    while at < to {
        let next = (at + Duration::days(1)).min(to);
        let current = segments.last().map(|s| s.1).unwrap_or(0);
        if offset_seconds(tz, next) != current {
            // first whole second with the new offset, in (at, next]
            let second = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or(next);
            let (mut lo, mut hi) = (at.timestamp(), next.timestamp() + i64::from(next.timestamp_subsec_nanos() > 0));
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_seconds(tz, second(mid)) == current {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let hi = second(hi);
            segments.push((hi, offset_seconds(tz, hi)));
        }
        at = next;
    }
    segments
}

/// SQL for the local wall time of the UTC `TIMESTAMP` expression `time` in `tz` over the range.
pub fn local_time_sql(time: &str, tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>, p: &mut Params) -> String {
    let segments = offsets(tz, from, to);
    let offset = match segments.as_slice() {
        [] => "0".to_string(),
        [(_, only)] => p.bind(*only),
        [(_, first), rest @ ..] => {
            let arms: Vec<String> =
                rest.iter().rev().map(|(start, seconds)| format!("WHEN {time} >= {} THEN {}", p.bind(*start), p.bind(*seconds))).collect();
            format!("CASE {} ELSE {} END", arms.join(" "), p.bind(*first))
        }
    };
    format!("({time} + CAST({offset} AS BIGINT) * INTERVAL 1 SECOND)")
}

/// The UTC instant of local midnight of `date` in `tz` (the earlier one where a change repeats
/// the hour; the first valid time where a change skips midnight).
pub fn local_midnight(tz: Tz, date: chrono::NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..48 {
        if let Some(local) = tz.from_local_datetime(&t).earliest() {
            return local.with_timezone(&Utc);
        }
        t += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn offsets_follow_daylight_saving_changes_to_the_second() {
        let ny: Tz = parse("America/New_York").unwrap();
        // 2026: DST ends 1 November 06:00 UTC (02:00 EDT → 01:00 EST), starts 8 March 2027 07:00 UTC
        let s = offsets(ny, at("2026-10-01T00:00:00Z"), at("2027-04-01T00:00:00Z"));
        assert_eq!(
            s,
            vec![(at("2026-10-01T00:00:00Z"), -4 * 3600), (at("2026-11-01T06:00:00Z"), -5 * 3600), (at("2027-03-14T07:00:00Z"), -4 * 3600)]
        );
        assert_eq!(offsets(Tz::UTC, at("1970-01-01T00:00:00Z"), at("2030-01-01T00:00:00Z")).len(), 1);
        // Lord Howe: a 30-minute change
        let lh = offsets(parse("Australia/Lord_Howe").unwrap(), at("2026-03-01T00:00:00Z"), at("2026-05-01T00:00:00Z"));
        assert_eq!(lh.iter().map(|s| s.1).collect::<Vec<_>>(), vec![11 * 3600, 10 * 3600 + 1800]);
    }

    #[test]
    fn names_are_checked_with_a_hint() {
        assert_eq!(parse("utc").unwrap(), Tz::UTC);
        assert_eq!(parse("Asia/Tokyo").unwrap(), chrono_tz::Asia::Tokyo);
        let e = parse("Mars/Olympus").unwrap_err();
        assert!(e.contains("Europe/Berlin"), "{e}");
    }

    #[test]
    fn local_midnight_is_the_first_instant_of_the_local_day() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        assert_eq!(local_midnight(chrono_tz::America::Los_Angeles, d), at("2026-11-21T08:00:00Z"));
        assert_eq!(local_midnight(chrono_tz::Asia::Tokyo, d), at("2026-11-20T15:00:00Z"));
        // Santiago skips midnight when DST starts (2026-09-06 00:00 → 01:00)
        let skip = chrono::NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        assert_eq!(local_midnight(chrono_tz::America::Santiago, skip), at("2026-09-06T04:00:00Z"));
    }
}
