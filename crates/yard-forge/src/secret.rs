//! Secrets and how they are made: passwords, tokens and keys travel in a
//! [`Secret`], whose `Debug` never shows the value and which has no
//! `Display`, so a secret cannot reach a log line or an error message by
//! accident; reading one takes a deliberate [`Secret::expose`].
//!
//! Every generated secret comes from the operating system's random source
//! (through `rand`'s thread generator, reseeded from it); nothing here has
//! a fixed default.

use std::fmt;

/// A secret value. `Debug` prints `Secret([redacted])`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a generated password.
const PASSWORD_LEN: usize = 40;

/// A new password: 40 letters and digits (about 238 bits), with at least
/// one lower-case letter, one capital and one digit, so it passes Gitea's
/// `PASSWORD_COMPLEXITY` checks for those classes as well as its minimum
/// length.
pub fn generate_password() -> Secret {
    loop {
        let password = random_alphanumeric(PASSWORD_LEN);
        let has = |f: fn(&u8) -> bool| password.as_bytes().iter().any(f);
        if has(u8::is_ascii_lowercase) && has(u8::is_ascii_uppercase) && has(u8::is_ascii_digit) {
            return Secret(password);
        }
    }
}

/// A new secret of `bytes` random bytes, hex-encoded (a webhook secret:
/// 32 bytes).
pub fn generate_hex_secret(bytes: usize) -> Secret {
    let mut buffer = vec![0u8; bytes];
    rand::fill(buffer.as_mut_slice());
    Secret(hex::encode(buffer))
}

/// `len` characters drawn uniformly from letters and digits.
pub(crate) fn random_alphanumeric(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in rand::random::<[u8; 64]>() {
            // 248 = 4 × 62: bytes above it are dropped, so every character
            // is equally likely.
            if byte < 248 && out.len() < len {
                out.push(char::from(ALPHANUMERIC[usize::from(byte % 62)]));
            }
        }
    }
    out
}

/// 32 random bytes as unpadded URL-safe base64 (43 characters): the form
/// Gitea reads its JWT signing secrets in.
pub(crate) fn random_base64url_32() -> String {
    base64url(&rand::random::<[u8; 32]>())
}

/// Unpadded URL-safe base64 (RFC 4648, section 5).
pub(crate) fn base64url(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(TABLE[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }

    #[test]
    fn generated_passwords_are_long_mixed_and_different() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose().len(), PASSWORD_LEN);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(a.expose().bytes().any(|c| c.is_ascii_uppercase()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn hex_secrets_have_the_length_asked_for() {
        let secret = generate_hex_secret(32);
        assert_eq!(secret.expose().len(), 64);
        assert!(secret.expose().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn base64url_matches_rfc_4648() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(b"fooba"), "Zm9vYmE");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(random_base64url_32().len(), 43);
    }
}
