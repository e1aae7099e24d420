//! Serving helpers.
