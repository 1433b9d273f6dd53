//! End-to-end tests for sluice: real processes, real TLS, real sockets on loopback.
