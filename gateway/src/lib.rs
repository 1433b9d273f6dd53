//! sluice's servers: the agency gateway's data plane, the audit log, limits, config and metrics.
//!
//! The request path is a visible sequence of phases (identity → route → decide → limit →
//! fetch → mask → respond → audit); see `ARCHITECTURE.md`.

pub mod admin;
pub mod audit;
pub mod body;
pub mod config;
pub mod data_plane;
pub mod demo;
pub mod gateway;
pub mod identity;
pub mod limits;
pub mod limits_redis;
pub mod metrics;
pub mod problem;
pub mod registry;
pub mod registry_client;
pub mod runtime;
pub mod server;
pub mod subscription;
pub mod tls;
pub mod usage;
pub mod usage_report;
pub mod watch;
