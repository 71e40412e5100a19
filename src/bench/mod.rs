//! Benchmark support: a generator of realistic Claude Code telemetry (issue 5). The benchmark
//! runner that drives it through the receivers and the query services builds on this.
pub mod generate;
