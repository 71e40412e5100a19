//! Any text through the raw SQL macro expander ($__timeFilter, $__timeGroup, …).
#![no_main]
use gpx_claudecode::query::{raw, QueryContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    let ctx = QueryContext {
        from: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        to: chrono::DateTime::from_timestamp(1_700_086_400, 0).unwrap_or_default(),
        interval_ms: 0,
        max_data_points: 1000,
        limits: raw::Limits::default(),
    };
    let _ = raw::expand(sql, &ctx);
});
