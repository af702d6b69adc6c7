//! User codes of the device authorisation grant (RFC 8628 §6.1): what a
//! person reads off a device and types into the verification page. Eight
//! letters of [`ALPHABET`] (20 consonants: no vowels, so no words; no letters
//! easily confused with digits), shown as `XXXX-XXXX`: 20^8 ≈ 2^34.6 codes,
//! against guessing together with the entry page's rate limit and the codes'
//! short life. What is typed is [`normalize`]d first: case and everything but
//! letters and digits (spaces, the dash, a phone's typographic dashes) do not
//! matter.

use rand::rngs::OsRng;
use rand::RngCore;

/// The letters of user codes (RFC 8628 §6.1's example set).
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code.
pub const LEN: usize = 8;

/// A new random user code, normalised (`WDJBMJHT`): each letter uniform over
/// [`ALPHABET`] (random bytes past the largest multiple of 20 are drawn
/// again).
pub fn generate() -> String {
    let mut code = String::with_capacity(LEN);
    let mut bytes = [0u8; 16];
    while code.len() < LEN {
        OsRng.fill_bytes(&mut bytes);
        for b in bytes {
            if code.len() < LEN && b < 240 {
                code.push(char::from(ALPHABET[usize::from(b % 20)]));
            }
        }
    }
    code
}

/// A normalised code as shown to a person: `WDJB-MJHT`.
pub fn display(code: &str) -> String {
    match (code.get(..LEN / 2), code.get(LEN / 2..)) {
        (Some(a), Some(b)) if code.len() == LEN => format!("{a}-{b}"),
        _ => code.to_string(),
    }
}

/// What a person typed, as stored: upper case, letters and digits only. `None`
/// when that cannot be a user code (wrong length, a letter not in
/// [`ALPHABET`], a digit).
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| c.is_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_eight_letters_of_the_alphabet_and_normalised() {
        for _ in 0..200 {
            let code = generate();
            assert_eq!(code.len(), LEN);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            assert_eq!(normalize(&code).as_deref(), Some(code.as_str()));
            assert_eq!(normalize(&display(&code)).as_deref(), Some(code.as_str()));
        }
        // Every letter turns up (a broken draw would favour some).
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            seen.extend(generate().bytes());
        }
        assert_eq!(seen.len(), ALPHABET.len());
    }

    #[test]
    fn what_is_typed_is_normalised() {
        assert_eq!(display("WDJBMJHT"), "WDJB-MJHT");
        for typed in [
            "WDJB-MJHT",
            "wdjbmjht",
            "wdjb-mjht",
            " wdjb mjht ",
            "WDJB–MJHT",
            "W D J B M J H T",
        ] {
            assert_eq!(normalize(typed).as_deref(), Some("WDJBMJHT"), "{typed:?}");
        }
        for typed in [
            "",
            "WDJB-MJH",
            "WDJB-MJHTX",
            "WDJA-MJHT",
            "WDJB-MJH1",
            "ẞDJB-MJHT",
        ] {
            assert_eq!(normalize(typed), None, "{typed:?}");
        }
    }
}
