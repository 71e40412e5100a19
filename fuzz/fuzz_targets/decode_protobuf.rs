//! Any bytes as an OTLP protobuf export of each signal, then flattened into rows and checked
//! against the limits: errors are fine, panics are not.
#![no_main]
use gpx_claudecode::ingest::{decode, flatten, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for signal in [decode::Signal::Logs, decode::Signal::Metrics, decode::Signal::Traces] {
        if let Ok(request) = decode::decode_protobuf(signal, data) {
            let _ = limits::check(&request, &limits::Limits::default());
            let _ = match &request {
                decode::ExportRequest::Logs(r) => flatten::logs(r, 0),
                decode::ExportRequest::Metrics(r) => flatten::metrics(r, 0),
                decode::ExportRequest::Traces(r) => flatten::traces(r, 0),
            };
        }
    }
    let _ = decode::gunzip(data, 1 << 20);
});
