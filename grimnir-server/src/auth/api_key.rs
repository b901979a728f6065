//! The API key format.
//!
//! A key reads `grk_` + 12 letters and digits (the **prefix**, stored in clear, shown in lists
//! and logs, and used to find the key) + `_` + 43 characters of base64url (the **secret**, 256
//! random bits). Only the SHA-256 of the secret is stored, and it is compared in constant time.
//! A key is shown once, when it is created.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

use super::token::{TokenError, random_bytes, sha256_hex};

/// The start of every API key.
pub const KEY_PREFIX: &str = "grk_";
/// Random letters and digits after [`KEY_PREFIX`] in the visible prefix.
const PREFIX_CHARS: usize = 12;
/// Length of the encoded secret.
const SECRET_CHARS: usize = 43;

/// A freshly made key: the full key to show once, and what to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The whole key, for the client; never stored.
    pub key: String,
    /// The visible prefix (`grk_` and 12 characters).
    pub prefix: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
}

/// Makes a new key.
pub fn generate() -> Result<NewKey, TokenError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // 256 is a multiple of 62 plus 8, so drop bytes of 248 and above to keep letters uniform.
    let mut prefix = String::from(KEY_PREFIX);
    while prefix.len() < KEY_PREFIX.len() + PREFIX_CHARS {
        for byte in random_bytes::<16>()? {
            if byte < 248 && prefix.len() < KEY_PREFIX.len() + PREFIX_CHARS {
                prefix.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    Ok(NewKey {
        key: format!("{prefix}_{secret}"),
        secret_hash: sha256_hex(&secret),
        prefix,
    })
}

/// Splits a presented key into its prefix and secret; `None` when it is not shaped like a key.
pub fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (random, secret) = rest.split_once('_')?;
    let prefix_len = KEY_PREFIX.len() + PREFIX_CHARS;
    (random.len() == PREFIX_CHARS
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
        && secret.len() == SECRET_CHARS)
        .then(|| key.split_at(prefix_len))
        .map(|(prefix, rest)| (prefix, &rest[1..]))
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    sha256_hex(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_and_match() {
        let new = generate().unwrap();
        assert!(new.key.starts_with(&new.prefix));
        assert_eq!(new.prefix.len(), 16);
        let (prefix, secret) = split(&new.key).unwrap();
        assert_eq!(prefix, new.prefix);
        assert!(secret_matches(secret, &new.secret_hash));
        let mut tampered = secret.to_owned();
        tampered.replace_range(0..1, if secret.starts_with('A') { "B" } else { "A" });
        assert!(!secret_matches(&tampered, &new.secret_hash));
        assert!(!secret_matches("", &new.secret_hash));
        assert_ne!(generate().unwrap().prefix, new.prefix);
    }

    #[test]
    fn malformed_keys_do_not_split() {
        let new = generate().unwrap();
        for bad in [
            "",
            "grk_",
            "grt_abcdefabcdef_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "grk_abc_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "grk_abcdefabcde!_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "grk_abcdefabcdef_short",
            &new.key[..new.key.len() - 1],
        ] {
            assert!(split(bad).is_none(), "{bad:?}");
        }
    }
}
