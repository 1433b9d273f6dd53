//! The `sluice` binary's library: the CLI glue that is not a server of its own (`sluice
//! admin` with `sluice admin drill` and `sluice admin report`, `sluice audit`, `sluice check`,
//! `sluice trace`) and the demo federation (`sluice demo`, `sluice sample-source`).

pub mod admin;
pub mod application_cli;
pub mod audit_cli;
pub mod check;
pub mod demand_cli;
pub mod demo;
pub mod drill_cli;
pub mod report_cli;
pub mod risk_cli;
pub mod trace_cli;
