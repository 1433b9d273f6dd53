//! The detector safety net: finds personal identifiers in free text and masks them.
