//! The hash-chained, durable audit log.
