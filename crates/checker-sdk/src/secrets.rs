//! Secrets by name: `FUNNELGATE_SECRET_<NAME>` in the checker's environment, or a file `<NAME>`
//! under a configured directory (a mounted Kubernetes Secret). Values never appear in logs,
//! errors or replies.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::SecretString;

/// Why a secret could not be resolved (never its value). A probe sees it as a `ProbeError`
/// (`From` in `probe.rs`: this module depends on nothing else of the SDK).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The name itself is not a valid secret name.
    #[error("{message}")]
    InvalidName { message: String },
    /// Not set anywhere, or not readable.
    #[error("{message}")]
    Unavailable { message: String },
}

impl SecretError {
    /// The message shown to users.
    pub fn message(&self) -> &str {
        match self {
            SecretError::InvalidName { message } | SecretError::Unavailable { message } => message,
        }
    }
}

/// Where secrets come from. Cheap to clone.
#[derive(Clone, Default)]
pub struct SecretStore {
    env: Arc<HashMap<String, String>>,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("env_names", &self.env.keys().collect::<Vec<_>>())
            .field("dir", &self.dir)
            .finish()
    }
}

/// Prefix of secret environment variables.
pub const SECRET_ENV_PREFIX: &str = "FUNNELGATE_SECRET_";

impl SecretStore {
    /// Build from an environment map (tests pass their own; `main` passes `std::env::vars()`)
    /// and an optional directory of secret files.
    pub fn new(env: impl IntoIterator<Item = (String, String)>, dir: Option<PathBuf>) -> Self {
        let env = env
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(SECRET_ENV_PREFIX)
                    .map(|n| (n.to_string(), v))
            })
            .collect();
        SecretStore {
            env: Arc::new(env),
            dir,
        }
    }

    /// Resolve a secret by name: environment first, then `<dir>/<NAME>` (trailing newline trimmed).
    pub fn get(&self, name: &str) -> Result<SecretString, SecretError> {
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err(SecretError::InvalidName {
                message: format!("`{name}` is not a valid secret name"),
            });
        }
        if let Some(v) = self.env.get(name) {
            return Ok(SecretString::from(v.clone()));
        }
        if let Some(dir) = &self.dir {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(v) => {
                    return Ok(SecretString::from(
                        v.trim_end_matches(['\n', '\r']).to_string(),
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(SecretError::Unavailable {
                        message: format!("secret `{name}`: cannot read {}: {e}", path.display()),
                    });
                }
            }
        }
        let place = match &self.dir {
            Some(d) => format!("{SECRET_ENV_PREFIX}{name} or {}", d.join(name).display()),
            None => format!("{SECRET_ENV_PREFIX}{name}"),
        };
        Err(SecretError::Unavailable {
            message: format!("secret `{name}` is not set (looked for {place})"),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn env_secret_resolves_and_debug_hides_values() {
        let s = SecretStore::new(
            [("FUNNELGATE_SECRET_HUBSPOT".into(), "pat-123".into())],
            None,
        );
        assert_eq!(s.get("HUBSPOT").unwrap().expose_secret(), "pat-123");
        assert!(!format!("{s:?}").contains("pat-123"));
    }

    #[test]
    fn missing_secret_says_where_it_looked() {
        let s = SecretStore::new(Vec::new(), Some(PathBuf::from("/run/secrets")));
        let e = s.get("SENDGRID").unwrap_err();
        assert!(
            e.message()
                .contains("FUNNELGATE_SECRET_SENDGRID or /run/secrets/SENDGRID"),
            "{e}"
        );
        assert!(s.get("../etc/passwd").is_err());
    }
}
