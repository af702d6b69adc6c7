//! PKCE (RFC 7636) for the authorisation code grant. The Matrix spec requires
//! the `S256` method only, so this module knows nothing of `plain`: the client
//! sends `code_challenge = BASE64URL-NOPAD(SHA256(code_verifier))` with the
//! authorisation request and proves possession with the verifier at the token
//! endpoint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of an S256 challenge: 32 bytes of SHA-256 in unpadded base64url.
const CHALLENGE_LEN: usize = 43;

/// Whether `v` is a well-formed `code_verifier` (RFC 7636 section 4.1):
/// 43 to 128 characters from `[A-Za-z0-9-._~]`.
pub fn verifier_is_valid(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `c` is a well-formed S256 `code_challenge`: exactly 43 characters
/// of unpadded base64url that decode to 32 bytes. Decoding (rather than only
/// checking the alphabet) also refuses non-canonical last characters, which
/// no SHA-256 digest could ever produce, so such a challenge is refused at
/// the authorisation request instead of failing later at the token endpoint.
pub fn challenge_is_valid(c: &str) -> bool {
    c.len() == CHALLENGE_LEN
        && URL_SAFE_NO_PAD
            .decode(c)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// The S256 challenge for `verifier`: BASE64URL-NOPAD(SHA256(ASCII(verifier))).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is well formed and hashes to `challenge`. The final
/// comparison is constant-time so that timing reveals nothing about how much
/// of a guessed verifier's hash matched the stored challenge.
pub fn verify(verifier: &str, challenge: &str) -> bool {
    if !verifier_is_valid(verifier) || !challenge_is_valid(challenge) {
        return false;
    }
    s256(verifier).as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B. The pair was checked independently with
    // `printf %s "$v" | openssl dgst -sha256 -binary | basenc --base64url`.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_7636_example_hashes_and_verifies() {
        assert!(verifier_is_valid(RFC_VERIFIER));
        assert!(challenge_is_valid(RFC_CHALLENGE));
        assert_eq!(s256(RFC_VERIFIER), RFC_CHALLENGE);
        assert!(verify(RFC_VERIFIER, RFC_CHALLENGE));
    }

    #[test]
    fn a_different_verifier_or_challenge_does_not_verify() {
        let mut other = RFC_VERIFIER.to_owned();
        other.replace_range(0..1, "e");
        assert!(!verify(&other, RFC_CHALLENGE));
        assert!(!verify(
            RFC_VERIFIER,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cA"
        ));
        // Padding, `plain` (challenge = verifier) and standard base64 are not S256.
        assert!(!verify(RFC_VERIFIER, &format!("{RFC_CHALLENGE}=")));
        assert!(!verify(RFC_VERIFIER, RFC_VERIFIER));
        assert!(!verify(
            RFC_VERIFIER,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }

    #[test]
    fn verifier_length_and_alphabet_follow_rfc_7636() {
        assert!(verifier_is_valid(&"a".repeat(43)));
        assert!(verifier_is_valid(&"Z9-._~".repeat(22)[..128]));
        assert!(!verifier_is_valid(&"a".repeat(42)));
        assert!(!verifier_is_valid(&"a".repeat(129)));
        assert!(!verifier_is_valid(""));
        for bad in ['+', '/', '=', ' ', '%', 'é', '\0', '\n'] {
            let v = format!("{}{bad}", "a".repeat(43));
            assert!(!verifier_is_valid(&v), "{bad:?}");
        }
        // 43 characters but more bytes: non-ASCII never counts.
        assert!(!verifier_is_valid(&"é".repeat(43)));
    }

    #[test]
    fn challenge_shape_is_checked() {
        assert!(!challenge_is_valid(""));
        assert!(!challenge_is_valid(&RFC_CHALLENGE[..42]));
        assert!(!challenge_is_valid(&format!("{RFC_CHALLENGE}A")));
        assert!(!challenge_is_valid(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw/cM"
        ));
        // Alphabet right but the last character carries bits past 256.
        assert!(!challenge_is_valid(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!challenge_is_valid(&"é".repeat(43)));
    }

    #[test]
    fn hostile_inputs_are_refused_without_panicking() {
        let huge = "a".repeat(1 << 20);
        assert!(!verifier_is_valid(&huge));
        assert!(!challenge_is_valid(&huge));
        assert!(!verify(&huge, &huge));
        assert!(!verify("", ""));
        assert!(!verify(RFC_VERIFIER, ""));
        assert!(!verify("\u{202e}", RFC_CHALLENGE));
        // s256 hashes anything, a challenge it makes always has the right shape.
        assert!(challenge_is_valid(&s256(&huge)));
        assert!(challenge_is_valid(&s256("")));
    }
}
