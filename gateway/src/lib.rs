//! sluice's servers: the agency gateway's data plane, the audit log, limits, config and metrics.
//!
//! The request path is a visible sequence of phases (identity → route → decide → limit →
//! fetch → mask → respond → audit); see `ARCHITECTURE.md`.

pub mod audit;
