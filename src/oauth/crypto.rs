//! The secrets of OAuth mode: random tokens, their stored digests, PKCE, and the sealing of
//! what must be kept but never read by whoever reads the store (the users' Handinger keys,
//! the sign-in form's pending request).
//!
//! Sealing is XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): an AEAD, so a sealed
//! value that was altered, or moved to another record (the associated data names the
//! record), does not open. Its 192-bit nonces are drawn at random, so replicas sealing
//! under one secret need no nonce bookkeeping. The key is HMAC-SHA256 of a fixed label under
//! the operator's secret; every sealed value starts with a 4-byte id of the key that sealed
//! it, so after a rotation (`HANDINGER_MCP_OAUTH_PREVIOUS_SECRET`) values sealed under the
//! previous secret still open, and are sealed again under the current one when next
//! rewritten (at a refresh).
//!
//! Tokens are 256 random bits; the store keeps only their SHA-256, so a copy of the store
//! holds no usable token (a 256-bit random value cannot be found from its digest, so no
//! keyed hash is needed, and rotating the secret does not end every session).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

const KEY_LABEL: &[u8] = b"handinger-mcp oauth sealing key v1";
const KEY_ID_LABEL: &[u8] = b"handinger-mcp oauth sealing key id v1";
const NONCE_BYTES: usize = 24;

/// `n` random bytes from the operating system, as URL-safe base64.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// What the store keeps of a token: its SHA-256, hex.
pub(crate) fn token_digest(token: &str) -> String {
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 7636 `S256`: whether `verifier` hashes to `challenge`. Constant time; a verifier
/// outside the RFC's 43–128 unreserved characters never matches.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

struct SealingKey {
    id: [u8; 4],
    cipher: XChaCha20Poly1305,
}

impl SealingKey {
    fn derive(secret: &[u8]) -> Self {
        let mac = |label: &[u8]| {
            // HMAC accepts a key of any length.
            let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
            mac.update(label);
            mac.finalize().into_bytes()
        };
        let key = mac(KEY_LABEL);
        let id = mac(KEY_ID_LABEL);
        Self {
            id: [id[0], id[1], id[2], id[3]],
            cipher: XChaCha20Poly1305::new(&key),
        }
    }
}

/// Seals and opens values under the current secret (and opens those of the previous one).
pub(crate) struct Sealer {
    current: SealingKey,
    previous: Option<SealingKey>,
}

/// A sealed value that does not open: altered, sealed for another record, or under a
/// secret this server no longer has.
#[derive(Debug)]
pub(crate) struct Unopenable;

impl Sealer {
    pub(crate) fn new(current: &SecretString, previous: Option<&SecretString>) -> Self {
        Self {
            current: SealingKey::derive(current.expose_secret().as_bytes()),
            previous: previous.map(|p| SealingKey::derive(p.expose_secret().as_bytes())),
        }
    }

    /// A sealer under a secret drawn at random: for one process with the memory store,
    /// whose records end with the process anyway.
    pub(crate) fn ephemeral() -> Self {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        Self {
            current: SealingKey::derive(&secret),
            previous: None,
        }
    }

    /// `plain` sealed for the record `context` names, as URL-safe base64.
    pub(crate) fn seal(&self, plain: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            // Encryption fails only for messages beyond 2^38 bytes.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(4 + NONCE_BYTES + sealed.len());
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens what [`Self::seal`] made for the same `context`; also whether it was sealed
    /// under the previous secret (and so should be sealed again).
    pub(crate) fn open(&self, sealed: &str, context: &str) -> Result<(Vec<u8>, bool), Unopenable> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed.as_bytes())
            .map_err(|_| Unopenable)?;
        if bytes.len() < 4 + NONCE_BYTES {
            return Err(Unopenable);
        }
        let (id, rest) = bytes.split_at(4);
        let (nonce, body) = rest.split_at(NONCE_BYTES);
        let (key, stale) = if id == self.current.id {
            (&self.current, false)
        } else {
            match &self.previous {
                Some(previous) if id == previous.id => (previous, true),
                _ => return Err(Unopenable),
            }
        };
        key.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map(|plain| (plain, stale))
            .map_err(|_| Unopenable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_record_and_survive_a_rotation() {
        let old = SecretString::from("old-secret-0123456789abcdef");
        let new = SecretString::from("new-secret-0123456789abcdef");
        let before = Sealer::new(&old, None);
        let sealed = before.seal(b"hdg_live_key", "grant:1");
        assert_eq!(before.open(&sealed, "grant:1").unwrap().0, b"hdg_live_key");
        assert!(
            before.open(&sealed, "grant:2").is_err(),
            "bound to its record"
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(before.open(&tampered, "grant:1").is_err());
        let rotated = Sealer::new(&new, Some(&old));
        let (plain, stale) = rotated.open(&sealed, "grant:1").unwrap();
        assert_eq!(plain, b"hdg_live_key");
        assert!(stale, "sealed under the previous secret");
        assert!(Sealer::new(&new, None).open(&sealed, "grant:1").is_err());
    }

    #[test]
    fn pkce_s256_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
    }
}
