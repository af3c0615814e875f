//! Auth tokens, as `--auth-token` chooses them (etcd's flag):
//!
//! - `simple` (etcd's default): an opaque random string ending in `.N`,
//!   registered on every member through raft when it is issued (the member
//!   keeps it in memory, idle for at most `--auth-token-ttl`);
//! - `jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m`: a signed JSON
//!   Web Token carrying the user name, the auth revision it was issued at
//!   and an expiry, verified by each member with the public key alone
//!   (nothing is registered). Used after the auth store changed, it is
//!   refused on key ranges (etcd's old-revision rule): sign in again.
//!
//! A token is a secret: it never reaches a log line or a metric.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

/// How this member issues and checks tokens.
pub enum TokenKind {
    /// etcd's simple tokens.
    Simple {
        /// Idle lifetime.
        ttl: Duration,
        /// Counter for the `.N` suffix.
        issued: AtomicU64,
    },
    /// Signed JWTs.
    Jwt(Box<Jwt>),
}

/// JWT signing and verification keys.
pub struct Jwt {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    ttl: Duration,
}

/// The claims of a raft-kv (and etcd) JWT.
#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

impl TokenKind {
    /// Parses `--auth-token` (with `--auth-token-ttl` for simple tokens).
    pub fn parse(spec: &str, simple_ttl: Duration) -> Result<Self> {
        let mut parts = spec.split(',');
        match parts.next().unwrap_or_default() {
            "simple" => Ok(TokenKind::Simple { ttl: simple_ttl, issued: AtomicU64::new(0) }),
            "jwt" => {
                let (mut public, mut private, mut method, mut ttl) = (None, None, None, Duration::from_secs(300));
                for p in parts {
                    let (k, v) = p.split_once('=').with_context(|| format!("--auth-token: {p:?} is not key=value"))?;
                    match k {
                        "pub-key" => public = Some(v.to_owned()),
                        "priv-key" => private = Some(v.to_owned()),
                        "sign-method" => method = Some(v.to_owned()),
                        "ttl" => ttl = crate::parse_duration(v).map_err(anyhow::Error::msg)?,
                        other => bail!("--auth-token: unknown jwt option {other:?}"),
                    }
                }
                let method = method.context("--auth-token jwt needs sign-method")?;
                let algorithm: Algorithm =
                    method.parse().map_err(|_| anyhow::anyhow!("--auth-token: unknown sign-method {method:?}"))?;
                let public = public.context("--auth-token jwt needs pub-key")?;
                let pem = std::fs::read(&public).with_context(|| format!("reading pub-key {public}"))?;
                let decoding = match algorithm {
                    Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => DecodingKey::from_rsa_pem(&pem),
                    Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem),
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    _ => bail!("--auth-token: sign-method {method} needs a key pair, not a shared secret"),
                }
                .context("pub-key is not a PEM public key for the sign-method")?;
                // A member without the private key verifies tokens but
                // issues none (etcd allows that too).
                let encoding = match private {
                    None => None,
                    Some(path) => {
                        let pem = std::fs::read(&path).with_context(|| format!("reading priv-key {path}"))?;
                        let key = match algorithm {
                            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                            _ => EncodingKey::from_rsa_pem(&pem),
                        };
                        Some(key.context("priv-key is not a PEM private key for the sign-method")?)
                    }
                };
                Ok(TokenKind::Jwt(Box::new(Jwt { algorithm, encoding, decoding, ttl })))
            }
            other => bail!("--auth-token: unknown token type {other:?} (simple or jwt)"),
        }
    }

    /// A new simple token (random, with etcd's `.N` suffix).
    pub fn new_simple(&self) -> Option<(String, u64)> {
        match self {
            TokenKind::Simple { ttl, issued } => {
                let n = issued.fetch_add(1, Ordering::Relaxed) + 1;
                let random = Alphanumeric.sample_string(&mut rand::rng(), 16);
                Some((format!("{random}.{n}"), ttl.as_secs().max(1)))
            }
            TokenKind::Jwt(_) => None,
        }
    }
}

impl Jwt {
    /// A signed token for `user`.
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, &'static str> {
        let key = self.encoding.as_ref().ok_or("this member has no priv-key to sign tokens")?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let claims = Claims { username: user.to_owned(), revision, exp: (now + self.ttl).as_secs() };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(|_| "cannot sign the token")
    }

    /// The user of a token whose signature and expiry verify, and the auth
    /// revision it was issued at.
    pub fn verify(&self, token: &str) -> Option<(String, u64)> {
        let mut v = Validation::new(self.algorithm);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).ok().map(|d| (d.claims.username, d.claims.revision))
    }
}
