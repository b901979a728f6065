//! Password hashing: argon2id for every new password, bcrypt verified for imported users.
//!
//! New hashes are argon2id (version 0x13) with **m = 19 MiB, t = 2, p = 1** and a 16-byte random
//! salt: the first of OWASP's recommended argon2id configurations. One hash or verification
//! takes about 50 ms on one core of the 2-core development machine (measured while it was
//! shared with builds). The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) carries its
//! parameters, so raising them later only makes [`verify`] report that a stored hash should be
//! replaced ([`Verified::Match { rehash: true }`](Verified::Match)).
//!
//! Users imported from other systems bring bcrypt hashes (`$2a$`, `$2b$`, `$2y$`). They are
//! verified as they are and, after a successful sign-in, replaced by an argon2id hash of the
//! password the user just proved to know. bcrypt reads at most 72 bytes of a password.
//!
//! ```
//! use grimnir_server::auth::password::{self, Verified};
//!
//! let hash = password::hash("correct horse battery staple")?;
//! assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
//! assert_eq!(
//!     password::verify("correct horse battery staple", &hash)?,
//!     Verified::Match { rehash: false }
//! );
//! assert_eq!(password::verify("wrong", &hash)?, Verified::Mismatch);
//! # Ok::<(), password::PasswordError>(())
//! ```

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};

/// Shortest password accepted for a new password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted, in bytes: hashing is costly, and nobody types more.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Memory cost of new hashes, in KiB (19 MiB).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Iterations of new hashes.
pub const T_COST: u32 = 2;
/// Lanes of new hashes.
pub const P_COST: u32 = 1;

/// Why a password could not be hashed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// A new password is too short.
    #[error("must be at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// A password is too long.
    #[error("must be at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// A stored hash is in no format the server verifies.
    #[error("the stored password hash is not argon2 or bcrypt ($2a$, $2b$, $2y$)")]
    UnknownHashFormat,
    /// The hashing library failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verified {
    /// The password is right. `rehash` says the stored hash is bcrypt or argon2 with other
    /// parameters, and should be replaced by [`hash`] of this password.
    Match {
        /// Whether to store a new hash.
        rehash: bool,
    },
    /// The password is wrong.
    Mismatch,
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Checks that a new password may be used: [`MIN_PASSWORD_CHARS`] characters at least,
/// [`MAX_PASSWORD_BYTES`] bytes at most.
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// The argon2id PHC string of `password`, with a fresh random salt. Blocking and costly (tens of
/// milliseconds): call it from a blocking thread.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    hasher()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

/// Whether an argon2 hash was made with other settings than new hashes get.
fn outdated(parsed: &PasswordHash) -> bool {
    let current = parsed.algorithm.as_str() == argon2::ARGON2ID_IDENT.as_str()
        && parsed.version == Some(Version::V0x13.into())
        && Params::try_from(parsed).is_ok_and(|p| {
            p.m_cost() == M_COST_KIB && p.t_cost() == T_COST && p.p_cost() == P_COST
        });
    !current
}

/// Checks `password` against a stored argon2 or bcrypt hash. Blocking and costly: call it from a
/// blocking thread. A password longer than [`MAX_PASSWORD_BYTES`] never matches.
pub fn verify(password: &str, stored: &str) -> Result<Verified, PasswordError> {
    if is_bcrypt(stored) {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(Verified::Mismatch);
        }
        return match bcrypt::verify(password, stored) {
            Ok(true) => Ok(Verified::Match { rehash: true }),
            Ok(false) => Ok(Verified::Mismatch),
            Err(_) => Err(PasswordError::UnknownHashFormat),
        };
    }
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::UnknownHashFormat)?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(PasswordError::UnknownHashFormat);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(Verified::Mismatch);
    }
    // The parameters come from the stored hash, not from `hasher()`.
    match hasher()?.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(Verified::Match {
            rehash: outdated(&parsed),
        }),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(Verified::Mismatch),
        Err(e) => Err(PasswordError::Hashing(e.to_string())),
    }
}

/// A random password for a new account: 24 characters of base64url (144 random bits).
pub fn generate() -> Result<String, super::token::TokenError> {
    use base64::Engine as _;
    Ok(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(super::token::random_bytes::<18>()?),
    )
}

/// Spends the time of one verification on nothing, so that a sign-in for an unknown email takes
/// as long as one with a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(dummy) = DUMMY.get_or_init(|| hash("grimnir dummy password").ok()) {
        let _ = verify(password, dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_are_argon2id_with_the_documented_parameters() {
        let h = hash("a long enough password").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_ne!(h, hash("a long enough password").unwrap(), "salted");
        assert_eq!(
            verify("a long enough password", &h).unwrap(),
            Verified::Match { rehash: false }
        );
        assert_eq!(
            verify("a long enough passwore", &h).unwrap(),
            Verified::Mismatch
        );
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_a_rehash() {
        // Cost 4 keeps the test quick; imported hashes usually have 10 or 12.
        let b = bcrypt::hash_with_result("imported secret", 4).unwrap();
        for version in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            let stored = b.format_for_version(version);
            assert_eq!(
                verify("imported secret", &stored).unwrap(),
                Verified::Match { rehash: true },
                "{stored}"
            );
            assert_eq!(
                verify("imported secreT", &stored).unwrap(),
                Verified::Mismatch
            );
        }
        // The bug-compatibility marker $2x$ is not accepted.
        let x = b.format_for_version(bcrypt::Version::TwoX);
        assert_eq!(
            verify("imported secret", &x),
            Err(PasswordError::UnknownHashFormat)
        );
    }

    #[test]
    fn weaker_argon2_hashes_ask_for_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"old parameters")
        .unwrap()
        .to_string();
        assert_eq!(
            verify("old parameters", &weak).unwrap(),
            Verified::Match { rehash: true }
        );
    }

    #[test]
    fn unknown_formats_and_odd_input_are_errors_not_panics() {
        for stored in ["", "plain", "$1$md5$x", "$argon2id$garbage", "$2b$04$short"] {
            assert!(verify("whatever", stored).is_err(), "{stored}");
        }
        let h = hash("a long enough password").unwrap();
        assert_eq!(
            verify(&"x".repeat(MAX_PASSWORD_BYTES + 1), &h).unwrap(),
            Verified::Mismatch
        );
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert_eq!(check_new(&a), Ok(()));
    }

    #[test]
    fn new_passwords_have_bounds() {
        assert_eq!(check_new("short"), Err(PasswordError::TooShort));
        assert_eq!(check_new("ten chars!"), Ok(()));
        assert_eq!(
            check_new(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong)
        );
        // Characters, not bytes: ten letters of two bytes each are ten characters.
        assert_eq!(check_new("ææææææææææ"), Ok(()));
    }
}
