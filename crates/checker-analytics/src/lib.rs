//! The analytics stage checker.
