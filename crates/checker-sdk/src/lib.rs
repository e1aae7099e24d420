//! Checker SDK.
