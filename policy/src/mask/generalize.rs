//! Generalisation.
