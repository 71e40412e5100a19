//! Any bytes as an OTLP/JSON export of each signal, then flattened into rows.
#![no_main]
use gpx_claudecode::ingest::{decode, flatten};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for signal in [decode::Signal::Logs, decode::Signal::Metrics, decode::Signal::Traces] {
        if let Ok(request) = decode::decode_json(signal, data) {
            let _ = match &request {
                decode::ExportRequest::Logs(r) => flatten::logs(r, 0),
                decode::ExportRequest::Metrics(r) => flatten::metrics(r, 0),
                decode::ExportRequest::Traces(r) => flatten::traces(r, 0),
            };
        }
    }
});
