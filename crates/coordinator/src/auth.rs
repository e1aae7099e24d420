//! Who may change gates: bearer tokens of configured operators, compared in constant time.

use std::collections::HashMap;

use crate::config::{AuthConfig, ConfigIssue, Role, SECRET_ENV_PREFIX};
use crate::error::ServiceError;

/// The actor recorded when no operators are configured.
pub const ANONYMOUS: &str = "anonymous";

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Operator name, or [`ANONYMOUS`].
    pub name: String,
    /// What they may do.
    pub role: Role,
}

struct Operator {
    name: String,
    role: Role,
    token: Vec<u8>,
}

/// Checks `authorization: Bearer <token>` against the configured operators.
pub struct Authorizer {
    operators: Vec<Operator>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print tokens.
        f.debug_struct("Authorizer")
            .field(
                "operators",
                &self.operators.iter().map(|o| &o.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Equal length and content, in time that depends only on the lengths.
/// Equal bytes, compared with `subtle` (no early exit on the first difference; a length
/// difference is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

impl Authorizer {
    /// Resolve every operator's token from `FUNNELGATE_SECRET_<token_secret>` in `env`. Missing
    /// or empty tokens are reported as config issues (all of them).
    pub fn from_config(
        auth: &AuthConfig,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let mut operators = Vec::new();
        let mut issues = Vec::new();
        for (i, op) in auth.operators.iter().enumerate() {
            let var = format!("{SECRET_ENV_PREFIX}{}", op.token_secret);
            match env.get(&var).map(|t| t.trim()) {
                Some(token)
                    if !token.is_empty()
                        && operators.iter().any(|o: &Operator| o.token == token.as_bytes()) =>
                {
                    issues.push(ConfigIssue::new(
                        format!("auth.operators[{i}].token_secret"),
                        format!(
                            "operator `{}` has the same token as another operator: tokens must be distinct",
                            op.name
                        ),
                    ))
                }
                Some(token) if !token.is_empty() => operators.push(Operator {
                    name: op.name.clone(),
                    role: op.role,
                    token: token.as_bytes().to_vec(),
                }),
                _ => issues.push(ConfigIssue::new(
                    format!("auth.operators[{i}].token_secret"),
                    format!(
                        "the token of operator `{}` is not set: set the environment variable {var}",
                        op.name
                    ),
                )),
            }
        }
        if issues.is_empty() {
            Ok(Authorizer { operators })
        } else {
            Err(issues)
        }
    }

    /// Is anyone allowed without a token?
    pub fn is_open(&self) -> bool {
        self.operators.is_empty()
    }

    /// Who is calling, from the value of the `authorization` header/metadata (if any).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ServiceError> {
        if self.is_open() {
            return Ok(Caller {
                name: ANONYMOUS.to_string(),
                role: Role::Operator,
            });
        }
        let Some(value) = authorization else {
            return Err(ServiceError::Unauthenticated(
                "missing `authorization: Bearer <token>` metadata: changing a gate needs an operator token".into(),
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ServiceError::Unauthenticated("`authorization` must be `Bearer <token>`".into())
            })?;
        // Compare against every operator so timing does not reveal which one matched.
        let mut found: Option<&Operator> = None;
        for op in &self.operators {
            if constant_time_eq(op.token.as_slice(), token.as_bytes()) {
                found = Some(op);
            }
        }
        found
            .map(|op| Caller {
                name: op.name.clone(),
                role: op.role,
            })
            .ok_or_else(|| {
                ServiceError::Unauthenticated("unknown token: no configured operator has it".into())
            })
    }

    /// Authenticate and require the operator role (to change a gate: `action` names it).
    pub fn authorize_change(
        &self,
        authorization: Option<&str>,
        action: &str,
    ) -> Result<Caller, ServiceError> {
        let caller = self.authenticate(authorization)?;
        match caller.role {
            Role::Operator => Ok(caller),
            Role::Viewer => Err(ServiceError::PermissionDenied(format!(
                "`{}` has role viewer: {action} needs role operator",
                caller.name
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::OperatorConfig;

    fn auth() -> Authorizer {
        let cfg = AuthConfig {
            operators: vec![
                OperatorConfig {
                    name: "alice".into(),
                    token_secret: "ALICE".into(),
                    role: Role::Operator,
                },
                OperatorConfig {
                    name: "bob".into(),
                    token_secret: "BOB".into(),
                    role: Role::Viewer,
                },
            ],
        };
        let env = HashMap::from([
            ("FUNNELGATE_SECRET_ALICE".to_string(), "a-token".to_string()),
            ("FUNNELGATE_SECRET_BOB".to_string(), "b-token".to_string()),
        ]);
        Authorizer::from_config(&cfg, &env).unwrap()
    }

    #[test]
    fn tokens_identify_operators_and_roles() {
        let a = auth();
        assert_eq!(
            a.authorize_change(Some("Bearer a-token"), "x")
                .unwrap()
                .name,
            "alice"
        );
        let e = a
            .authorize_change(Some("Bearer b-token"), "setting an override")
            .unwrap_err();
        assert!(matches!(e, ServiceError::PermissionDenied(_)), "{e}");
        assert!(matches!(
            a.authorize_change(None, "x"),
            Err(ServiceError::Unauthenticated(_))
        ));
        assert!(matches!(
            a.authorize_change(Some("Bearer nope"), "x"),
            Err(ServiceError::Unauthenticated(_))
        ));
        assert!(matches!(
            a.authorize_change(Some("a-token"), "x"),
            Err(ServiceError::Unauthenticated(_))
        ));
    }

    #[test]
    fn missing_tokens_are_config_issues() {
        let cfg = AuthConfig {
            operators: vec![OperatorConfig {
                name: "c".into(),
                token_secret: "C".into(),
                role: Role::Operator,
            }],
        };
        let issues = Authorizer::from_config(&cfg, &HashMap::new()).unwrap_err();
        assert_eq!(issues[0].key, "auth.operators[0].token_secret");
        assert!(issues[0].reason.contains("FUNNELGATE_SECRET_C"));
    }

    #[test]
    fn shared_tokens_are_rejected() {
        let cfg = AuthConfig {
            operators: vec![
                OperatorConfig {
                    name: "a".into(),
                    token_secret: "A".into(),
                    role: Role::Operator,
                },
                OperatorConfig {
                    name: "b".into(),
                    token_secret: "B".into(),
                    role: Role::Viewer,
                },
            ],
        };
        let env = HashMap::from([
            ("FUNNELGATE_SECRET_A".to_string(), "same".to_string()),
            ("FUNNELGATE_SECRET_B".to_string(), "same".to_string()),
        ]);
        let issues = Authorizer::from_config(&cfg, &env).unwrap_err();
        assert_eq!(issues[0].key, "auth.operators[1].token_secret");
    }

    #[test]
    fn open_when_no_operators() {
        let a = Authorizer::from_config(&AuthConfig::default(), &HashMap::new()).unwrap();
        assert_eq!(a.authorize_change(None, "x").unwrap().name, ANONYMOUS);
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
