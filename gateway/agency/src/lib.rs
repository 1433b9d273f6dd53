//! sluice-agency: the agency gateway that sits in front of one agency's sources.
//!
//! The request path is a visible sequence of phases (identity → route → decide → limit →
//! fetch → mask → respond → audit); see `ARCHITECTURE.md`. Around it: limits, the audit log,
//! config and reload, the registry subscription, usage reporting, metrics and the admin
//! listener.

pub mod admin;
pub mod audit;
pub mod config;
pub mod data_plane;
pub mod gateway;
pub mod limits;
pub mod listeners;
pub mod metrics;
pub mod openapi;
pub mod risk;
pub mod runtime;
pub mod source_health;
pub mod subscription;
mod sync;
pub mod trace;
pub mod usage;
pub mod usage_report;
pub mod watch;
