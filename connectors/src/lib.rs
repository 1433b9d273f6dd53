//! sluice-connectors: the agency side. Fetches from agency sources (HTTP upstreams, PostgreSQL, MySQL, files) as byte streams; never masks, never decides.
