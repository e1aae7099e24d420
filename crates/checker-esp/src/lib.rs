//! The esp stage checker.
