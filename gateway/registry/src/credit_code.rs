//! The unified social credit code (统一社会信用代码, GB 32100-2015) of a licensee: 18 characters
//! from a 31-character alphabet (digits and capital letters without I, O, Z, S, V), the last
//! one a check character computed from the first 17 with weights `3^i mod 31`.

/// The code's alphabet; a character's value is its index.
pub const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1–17.
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Why a credit code is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    /// Not 18 characters.
    #[error("a unified social credit code has 18 characters, not {0}")]
    Length(usize),
    /// A character outside the alphabet.
    #[error("character {ch:?} at position {pos} is not allowed in a unified social credit code")]
    Character {
        /// The character.
        ch: char,
        /// 1-based position.
        pos: usize,
    },
    /// The check character does not match.
    #[error("check character is {got:?}, expected {expected:?}")]
    Check {
        /// Given.
        got: char,
        /// Computed.
        expected: char,
    },
}

fn value(ch: char) -> Option<u32> {
    let b = u8::try_from(u32::from(ch)).ok()?;
    ALPHABET
        .iter()
        .position(|&a| a == b)
        .and_then(|p| u32::try_from(p).ok())
}

/// The check character for the first 17 characters of a code (`None` if one is not allowed).
pub fn check_char(first17: &str) -> Option<char> {
    let chars: Vec<char> = first17.chars().collect();
    if chars.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (ch, w) in chars.iter().zip(WEIGHTS) {
        sum += value(*ch)? * w;
    }
    let check = (31 - sum % 31) % 31;
    ALPHABET.get(usize::try_from(check).ok()?).map(|&b| char::from(b))
}

/// Validates a code (upper case, as printed on business licences); returns it unchanged.
pub fn validate(code: &str) -> Result<&str, CreditCodeError> {
    let chars: Vec<char> = code.chars().collect();
    if chars.len() != 18 {
        return Err(CreditCodeError::Length(chars.len()));
    }
    for (i, &ch) in chars.iter().enumerate() {
        if value(ch).is_none() {
            return Err(CreditCodeError::Character { ch, pos: i + 1 });
        }
    }
    let first17: String = chars[..17].iter().collect();
    let expected = check_char(&first17).ok_or(CreditCodeError::Length(chars.len()))?;
    if chars[17] != expected {
        return Err(CreditCodeError::Check {
            got: chars[17],
            expected,
        });
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_shaped_codes_validate() {
        for code in [
            "91350100M000100Y43",
            "91110000600037341L",
            "91310000MA1FL0AB2D",
            "11100000000013127D",
        ] {
            let first17 = &code[..17];
            let good = format!("{first17}{}", check_char(first17).unwrap());
            assert!(validate(&good).is_ok(), "{good}");
        }
        assert_eq!(validate("91350100M000100Y43"), Ok("91350100M000100Y43"));
    }

    #[test]
    fn wrong_check_character_length_and_alphabet_are_refused() {
        assert!(matches!(
            validate("91350100M000100Y44"),
            Err(CreditCodeError::Check {
                got: '4',
                expected: '3'
            })
        ));
        assert_eq!(validate("91350100M000100Y4"), Err(CreditCodeError::Length(17)));
        assert_eq!(
            validate("91350100I000100Y43"),
            Err(CreditCodeError::Character { ch: 'I', pos: 9 })
        );
        assert_eq!(
            validate("91350100m000100Y43"),
            Err(CreditCodeError::Character { ch: 'm', pos: 9 })
        );
        assert_eq!(validate(""), Err(CreditCodeError::Length(0)));
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let code: Vec<char> = "91350100M000100Y43".chars().collect();
        for pos in 0..18 {
            for &b in ALPHABET {
                let ch = char::from(b);
                if ch == code[pos] {
                    continue;
                }
                let mut c = code.clone();
                c[pos] = ch;
                let s: String = c.into_iter().collect();
                assert!(validate(&s).is_err(), "{s}");
            }
        }
    }
}
