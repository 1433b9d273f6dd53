//! The `sluice` binary's library: the CLI glue that is not a server of its own (`sluice
//! admin`, `sluice audit`, `sluice check`, `sluice trace`) and the demo federation (`sluice
//! demo`, `sluice sample-source`).

pub mod admin;
pub mod audit_cli;
pub mod check;
pub mod demo;
pub mod trace_cli;
