//! The Claude Code datasource for Grafana as a library: the `gpx_claudecode` executable
//! (`main.rs`) and the fuzz targets (`fuzz/`) build on it. Data flows ingest → store → query →
//! plugin; queries answer with `frame`s, which the plugin encodes for Grafana; `app` holds the
//! shared state, `config` the settings, `bench` the benchmark. `api` is the running process's
//! local API and `cli` the terminal commands that use it (or the file when nothing runs).
pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod export;
pub mod frame;
pub mod import;
pub mod ingest;
pub mod plugin;
pub mod prices;
pub mod query;
pub mod statusline;
pub mod store;
#[cfg(test)]
mod test_fixtures;
