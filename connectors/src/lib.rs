//! sluice-connectors: the agency side. Fetches records from agency sources as byte streams,
//! pushing row filters down where the source can. It never decides and never masks: the
//! gateway applies the policy crate's plan to whatever a connector returns.

pub mod http;
