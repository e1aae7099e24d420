//! The crm stage checker.
