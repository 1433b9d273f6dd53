//! Registry refusals: the shared [`Problem`] with registry codes, and how store errors
//! become problems (internal causes are logged, never sent).

pub use sluice_net::problem::{Problem, ProblemCode};

impl From<super::store::StoreError> for Problem {
    fn from(e: super::store::StoreError) -> Self {
        use super::store::StoreError as E;
        match e {
            E::NotFound(m) => Problem::new(ProblemCode::NotFound, m),
            E::Conflict(m) => Problem::new(ProblemCode::Conflict, m),
            E::Invalid(m) => Problem::new(ProblemCode::Invalid, m),
            E::FusionConflict(m) => Problem::new(ProblemCode::FusionConflict, m),
            other => {
                tracing::error!(error = %other, "registry store failed");
                Problem::new(
                    ProblemCode::Internal,
                    "the registry could not complete the request",
                )
            }
        }
    }
}
