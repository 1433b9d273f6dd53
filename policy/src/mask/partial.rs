//! Partial masking.
