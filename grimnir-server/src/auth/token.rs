//! Access tokens (JWT) and refresh tokens.
//!
//! **Access token**: a JWT signed with HS256 and the server's secret, valid for
//! [`ACCESS_TTL`] (15 minutes). Claims:
//!
//! | claim | value |
//! | --- | --- |
//! | `iss` | [`ISSUER`] (`grimnir`) |
//! | `aud` | [`AUDIENCE`] (`grimnir-api`) |
//! | `sub` | the user's id |
//! | `sid` | the session: the refresh-token family the login started |
//! | `iat`, `exp` | issued at, expires at (Unix seconds) |
//! | `jti` | a random id |
//!
//! Verification accepts HS256 only (a token whose header names `none`, HS512, RS256 or anything
//! else is refused before its signature is looked at), checks the signature, `exp` with
//! [`LEEWAY_SECS`] of clock skew, `iss` and `aud`, and requires `sub` and `sid`.
//!
//! **Refresh token**: `grt_` followed by 43 characters of base64url, 256 random bits. Only its
//! SHA-256 is stored: with that much entropy a slow hash adds nothing, and the hash is looked up
//! through a unique index.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::refresh_tokens::FamilyId;
use crate::db::users::UserId;

/// How long an access token is valid.
pub const ACCESS_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// How long a refresh token is valid after it was issued; every refresh issues a new one.
pub const REFRESH_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
/// The `iss` claim of access tokens.
pub const ISSUER: &str = "grimnir";
/// The `aud` claim of access tokens.
pub const AUDIENCE: &str = "grimnir-api";
/// Clock skew tolerated on `exp`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Shortest JWT secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// The start of every refresh token.
pub const REFRESH_PREFIX: &str = "grt_";

/// Why a secret or token could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The configured secret is too short.
    #[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes")]
    SecretTooShort,
    /// The operating system's random source failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token is not one this server issued, or was altered.
    #[error("the token is invalid: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

/// What the live source key is derived for ([`JwtSecret::live_key`]).
const LIVE_KEY_LABEL: &[u8] = b"grimnir live source credential key v1";

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The secret access tokens are signed with. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// A secret from configuration: at least [`MIN_SECRET_BYTES`] bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::SecretTooShort);
        }
        Ok(JwtSecret(secret))
    }

    /// The key live source credentials are signed with: HMAC-SHA256 of a fixed label under
    /// this secret, as 64 lower-case hex digits. Engines check DJs' credentials with it (the
    /// engine config's `live.key_file`), so it is a key of its own: an engine holding it can
    /// vouch for DJs but cannot sign access tokens.
    pub fn live_key(&self) -> String {
        hmac_sha256(&self.0, LIVE_KEY_LABEL)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// 64 random bytes, for a development server started without a secret. Tokens signed with
    /// it do not survive a restart.
    pub fn generate() -> Result<Self, TokenError> {
        Ok(JwtSecret(random_bytes::<64>()?.to_vec()))
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(***)")
    }
}

impl std::str::FromStr for JwtSecret {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JwtSecret::new(s.as_bytes())
    }
}

/// `N` bytes from the operating system's random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], TokenError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(bytes)
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Audience: [`AUDIENCE`].
    pub aud: String,
    /// The user's id.
    pub sub: String,
    /// The session (refresh-token family).
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// A random token id.
    pub jti: String,
}

/// A verified access token: whose it is and which session it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessToken {
    /// The user.
    pub user: UserId,
    /// The session.
    pub session: FamilyId,
    /// Expires at, Unix seconds.
    pub expires_at: i64,
}

/// Signs and verifies access tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Live source credentials: their own key ([`JwtSecret::live_key`]).
    live_encoding: EncodingKey,
    live_decoding: DecodingKey,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys").finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys for `secret`.
    pub fn new(secret: &JwtSecret) -> Self {
        // The RustCrypto backend is the only one compiled in; installing it explicitly keeps
        // jsonwebtoken from guessing. A second call (another `TokenKeys`) finds it installed.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let live_key = secret.live_key();
        TokenKeys {
            encoding: EncodingKey::from_secret(&secret.0),
            decoding: DecodingKey::from_secret(&secret.0),
            validation,
            live_encoding: EncodingKey::from_secret(live_key.as_bytes()),
            live_decoding: DecodingKey::from_secret(live_key.as_bytes()),
        }
    }

    /// An access token for `user` in `session`, issued at `now` (Unix seconds), valid for
    /// [`ACCESS_TTL`].
    pub fn issue(&self, user: UserId, session: FamilyId, now: i64) -> Result<String, TokenError> {
        let ttl = i64::try_from(ACCESS_TTL.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user.to_string(),
            sid: session.to_string(),
            iat: now,
            exp: now.saturating_add(ttl),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        self.sign(&claims)
    }

    /// Signs any claims with HS256 (tests use it to make expired tokens).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Verifies an access token: algorithm, signature, expiry, issuer, audience and claims.
    pub fn verify(&self, token: &str) -> Result<AccessToken, TokenError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::Invalid("bad signature".into()),
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::MissingAlgorithm => {
                    TokenError::Invalid("algorithm not accepted".into())
                }
                ErrorKind::InvalidIssuer => TokenError::Invalid("wrong issuer".into()),
                ErrorKind::InvalidAudience => TokenError::Invalid("wrong audience".into()),
                ErrorKind::MissingRequiredClaim(claim) => {
                    TokenError::Invalid(format!("missing claim {claim}"))
                }
                _ => TokenError::Invalid("malformed token".into()),
            })?;
        let claims = data.claims;
        let user = claims
            .sub
            .parse()
            .map_err(|_| TokenError::Invalid("sub is not a user id".into()))?;
        let session = claims
            .sid
            .parse()
            .map_err(|_| TokenError::Invalid("sid is not a session id".into()))?;
        Ok(AccessToken {
            user,
            session,
            expires_at: claims.exp,
        })
    }
}

/// The audience of live source credentials: never accepted as an access token, nor an access
/// token as one.
pub const LIVE_AUDIENCE: &str = "grimnir-live-source";

/// The purpose a live source credential is scoped to.
pub const LIVE_PURPOSE: &str = "live_source";

/// How long a live source credential is valid.
pub const LIVE_TTL: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The claims of a live source credential: a DJ's source client may connect to one mount of
/// one station until `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveClaims {
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Audience: [`LIVE_AUDIENCE`].
    pub aud: String,
    /// The DJ's user id.
    pub sub: String,
    /// The station.
    pub station: String,
    /// The mount the source client may feed.
    pub mount: String,
    /// Always [`LIVE_PURPOSE`].
    pub purpose: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// A random credential id.
    pub jti: String,
}

impl TokenKeys {
    /// Signs a live source credential with the live key (HS256), which engines hold to
    /// check it ([`JwtSecret::live_key`]).
    pub fn sign_live(&self, claims: &LiveClaims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.live_encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Verifies a live source credential: signature, expiry, issuer, the [`LIVE_AUDIENCE`]
    /// and the [`LIVE_PURPOSE`]. An access token is refused.
    pub fn verify_live(&self, token: &str) -> Result<LiveClaims, TokenError> {
        let mut validation = self.validation.clone();
        validation.set_audience(&[LIVE_AUDIENCE]);
        let data = jsonwebtoken::decode::<LiveClaims>(token, &self.live_decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid("not a live source credential".into()),
            })?;
        if data.claims.purpose != LIVE_PURPOSE {
            return Err(TokenError::Invalid("not a live source credential".into()));
        }
        Ok(data.claims)
    }
}

/// The audience of event stream tickets: never accepted as an access token, nor an access
/// token as a ticket.
pub const TICKET_AUDIENCE: &str = "grimnir-event-ticket";

/// How long an event stream ticket may wait before it is presented.
pub const TICKET_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The claims of an event stream ticket: the bearer may open one event stream as the
/// credential `cred` of user `sub` until `exp`.
///
/// A browser cannot set `Authorization` on a WebSocket or an `EventSource`, so it trades its
/// access token for a ticket and puts the ticket in the stream's URL. The ticket is short-lived
/// and good once, so a URL that lands in a proxy's log is useless by the time anyone reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    /// Issuer: [`ISSUER`].
    pub iss: String,
    /// Audience: [`TICKET_AUDIENCE`].
    pub aud: String,
    /// The user's id.
    pub sub: String,
    /// The credential the ticket was bought with: `session:<family id>` or `api_key:<key id>`.
    pub cred: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// A random ticket id, which is spent when the ticket is presented.
    pub jti: String,
}

impl TokenKeys {
    /// Signs an event stream ticket (HS256, the access tokens' key, the ticket audience).
    pub fn sign_ticket(&self, claims: &TicketClaims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Verifies an event stream ticket: algorithm, signature, expiry, issuer and the
    /// [`TICKET_AUDIENCE`]. An access token or a live credential is refused.
    pub fn verify_ticket(&self, ticket: &str) -> Result<TicketClaims, TokenError> {
        let mut validation = self.validation.clone();
        validation.set_audience(&[TICKET_AUDIENCE]);
        // A ticket lives seconds: the access tokens' leeway would more than double that.
        validation.leeway = 0;
        jsonwebtoken::decode::<TicketClaims>(ticket, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid("not an event stream ticket".into()),
            })
    }
}

/// A new refresh token and the hash to store.
pub fn new_refresh_token() -> Result<(String, String), TokenError> {
    let token = format!(
        "{REFRESH_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    );
    let hash = sha256_hex(&token);
    Ok((token, hash))
}

/// The hash a refresh token is stored and found by.
pub fn refresh_token_hash(token: &str) -> String {
    sha256_hex(token)
}

/// SHA-256 of `text`, as lower-case hex.
pub(crate) fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(&secret.parse().unwrap())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (RFC 4231 test case 6).
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn live_credentials_are_signed_with_the_live_key_not_the_token_secret() {
        let secret: JwtSecret = SECRET.parse().unwrap();
        let live_key = secret.live_key();
        assert_eq!(live_key.len(), 64);
        assert_eq!(
            live_key,
            secret.live_key(),
            "the key is derived, not random"
        );
        let other: JwtSecret = "another secret of thirty-two bytes!".parse().unwrap();
        assert_ne!(live_key, other.live_key());
        let keys = TokenKeys::new(&secret);
        let claims = LiveClaims {
            iss: ISSUER.into(),
            aud: LIVE_AUDIENCE.into(),
            sub: "u".into(),
            station: "s".into(),
            mount: "m".into(),
            purpose: LIVE_PURPOSE.into(),
            iat: now(),
            exp: now() + 60,
            jti: "j".into(),
        };
        let credential = keys.sign_live(&claims).unwrap();
        assert_eq!(keys.verify_live(&credential).unwrap(), claims);
        // What an engine does with the live key alone.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[LIVE_AUDIENCE]);
        let with = |key: &[u8]| {
            jsonwebtoken::decode::<LiveClaims>(
                &credential,
                &DecodingKey::from_secret(key),
                &validation,
            )
        };
        assert!(with(live_key.as_bytes()).is_ok());
        assert!(
            with(SECRET.as_bytes()).is_err(),
            "signed with the token secret"
        );
        // And a live credential signed with the token secret is refused.
        let forged =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify_live(&forged).is_err());
    }

    #[test]
    fn tickets_and_access_tokens_are_not_interchangeable() {
        let keys = keys(SECRET);
        let claims = TicketClaims {
            iss: ISSUER.to_owned(),
            aud: TICKET_AUDIENCE.to_owned(),
            sub: UserId::random().to_string(),
            cred: format!("session:{}", FamilyId::random()),
            iat: now(),
            exp: now() + 30,
            jti: "t1".to_owned(),
        };
        let ticket = keys.sign_ticket(&claims).unwrap();
        assert_eq!(keys.verify_ticket(&ticket).unwrap(), claims);
        // A ticket is not an access token, nor an access token a ticket.
        assert!(matches!(keys.verify(&ticket), Err(TokenError::Invalid(_))));
        let access = keys
            .issue(UserId::random(), FamilyId::random(), now())
            .unwrap();
        assert!(matches!(
            keys.verify_ticket(&access),
            Err(TokenError::Invalid(_))
        ));
        // Another server's ticket, and an expired one (no leeway: a second past is too late).
        let foreign = TokenKeys::new(&"another secret of thirty-two bytes!!".parse().unwrap());
        assert!(matches!(
            keys.verify_ticket(&foreign.sign_ticket(&claims).unwrap()),
            Err(TokenError::Invalid(_))
        ));
        let expired = TicketClaims {
            exp: now() - 1,
            ..claims
        };
        assert_eq!(
            keys.verify_ticket(&keys.sign_ticket(&expired).unwrap()),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn issued_tokens_verify() {
        let keys = keys(SECRET);
        let (user, session) = (UserId::random(), FamilyId::random());
        let token = keys.issue(user, session, now()).unwrap();
        let verified = keys.verify(&token).unwrap();
        assert_eq!((verified.user, verified.session), (user, session));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            "too short".parse::<JwtSecret>(),
            Err(TokenError::SecretTooShort)
        );
        assert_eq!(
            format!("{:?}", JwtSecret::generate().unwrap()),
            "JwtSecret(***)"
        );
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let keys = keys(SECRET);
        let (user, session) = (UserId::random(), FamilyId::random());
        let old = keys.issue(user, session, now() - 3600).unwrap();
        assert_eq!(keys.verify(&old), Err(TokenError::Expired));
        let other = self::keys("another secret of thirty-two bytes!");
        let forged = other.issue(user, session, now()).unwrap();
        assert_eq!(
            keys.verify(&forged),
            Err(TokenError::Invalid("bad signature".into()))
        );
        let mut claims = AccessClaims {
            iss: "someone-else".into(),
            aud: AUDIENCE.into(),
            sub: user.to_string(),
            sid: session.to_string(),
            iat: now(),
            exp: now() + 60,
            jti: "x".into(),
        };
        assert!(keys.verify(&keys.sign(&claims).unwrap()).is_err());
        claims.iss = ISSUER.into();
        claims.sub = "not-a-uuid".into();
        assert!(keys.verify(&keys.sign(&claims).unwrap()).is_err());
        for garbage in ["", "a.b.c", "not a token", "....."] {
            assert!(keys.verify(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, hash_a) = new_refresh_token().unwrap();
        let (b, _) = new_refresh_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(REFRESH_PREFIX));
        assert_eq!(a.len(), REFRESH_PREFIX.len() + 43);
        assert_eq!(hash_a, refresh_token_hash(&a));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a[4..]));
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
