//! Google service-account auth (RFC 7523 JWT bearer grant, as Google's OAuth 2.0 server-to-server
//! flow): an RS256-signed JWT assertion (signed with `ring`) exchanged at the token endpoint for
//! an access token, cached until shortly before it expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use funnelgate_checker_sdk::ProbeError;
use funnelgate_checker_sdk::vendor_http::send_json;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

/// The read-only Analytics scope (Admin and Data API reads).
pub const SCOPE: &str = "https://www.googleapis.com/auth/analytics.readonly";
/// Google's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The fields of a service-account JSON key we use.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    token_uri: Option<String>,
}

/// A parsed service-account key.
pub struct ServiceAccount {
    email: String,
    key: RsaKeyPair,
    token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Parse a service-account JSON key (the secret's value). Errors never quote the key.
    pub fn from_json(secret: &SecretString) -> Result<Self, ProbeError> {
        let k: KeyFile = serde_json::from_str(secret.expose_secret()).map_err(|e| {
            ProbeError::permanent(format!(
                "ga4: the secret is not a service-account json key ({})",
                e.to_string()
                    .split(" at line")
                    .next()
                    .unwrap_or("invalid json")
            ))
        })?;
        if k.kind.as_deref().is_some_and(|t| t != "service_account") {
            return Err(ProbeError::permanent(
                "ga4: the secret's json key is not of type `service_account`",
            ));
        }
        let der = PrivatePkcs8KeyDer::from_pem_slice(k.private_key.as_bytes()).map_err(|_| {
            ProbeError::permanent(
                "ga4: the service-account key's `private_key` is not a pkcs#8 pem private key",
            )
        })?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| {
            ProbeError::permanent(format!(
                "ga4: the service-account key's `private_key` is not a usable rsa key: {e}"
            ))
        })?;
        Ok(ServiceAccount {
            email: k.client_email,
            key,
            token_uri: k.token_uri,
        })
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    /// The signed JWT assertion for `aud` (the token endpoint), valid one hour from `now`.
    pub fn assertion(&self, aud: &str, scope: &str, now: u64) -> Result<String, ProbeError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": self.email, "scope": scope, "aud": aud, "iat": now, "exp": now + 3600,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{claims}");
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| ProbeError::permanent("ga4: signing the jwt assertion failed"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Access tokens for one service account, cached.
pub struct TokenSource {
    token_url: Option<String>,
    cached: Mutex<Option<(String, SystemTime)>>,
}

impl TokenSource {
    /// `token_url` overrides the key's `token_uri` (and Google's default).
    pub fn new(token_url: Option<String>) -> Self {
        TokenSource {
            token_url,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token (a cached one while it has a minute left).
    pub async fn token(
        &self,
        http: &reqwest::Client,
        sa: &ServiceAccount,
        timeout: Duration,
    ) -> Result<SecretString, ProbeError> {
        let mut cached = self.cached.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && SystemTime::now() + Duration::from_secs(60) < *until
        {
            return Ok(SecretString::from(t.clone()));
        }
        let url = self
            .token_url
            .clone()
            .or_else(|| sa.token_uri.clone())
            .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_string());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let jwt = sa.assertion(&url, SCOPE, now)?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &jwt)
            .finish();
        let req = http
            .post(&url)
            .timeout(timeout)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        let resp = send_json::<TokenResponse>("google oauth", "POST token", req)
            .await
            .map_err(|mut e| {
                if e.message.contains("400") || e.message.contains("401") {
                    e.message
                        .push_str(" (is the service account key revoked or its clock skewed?)");
                }
                e
            })?;
        let until = SystemTime::now() + Duration::from_secs(resp.body.expires_in.unwrap_or(3600));
        let token = resp.body.access_token;
        *cached = Some((token.clone(), until));
        Ok(SecretString::from(token))
    }
}
