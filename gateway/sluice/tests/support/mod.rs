//! Support for the federation tests and the revocation benchmark: real `sluice` processes
//! (registry, gateways, sample source) on loopback, and clients to probe them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod federation;
pub mod probe;
pub mod process;

/// `both!(name)` runs `async fn name(b: Backend)` as two tests, `name::sqlite` and
/// `name::postgres`, each on a two-thread runtime (the test file imports `Backend`).
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    };
}
