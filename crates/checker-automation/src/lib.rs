//! The automation stage checker.
