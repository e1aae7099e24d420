//! The esp stage checker.

pub mod vendors;
