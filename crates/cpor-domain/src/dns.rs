//! Domain names compared as DNS names (issue 11 case 12).
//!
//! A tenant's domains and a claim's `domain` are the same name when their
//! UTS #46 ToASCII forms are equal: Unicode case folding and NFC
//! normalization (so `MÜLLER-BAU.example`, `müller-bau.example`, its NFD
//! spelling and the A-label `xn--mller-bau-q9a.example` are one name), ASCII
//! lowercase, and one trailing dot (the DNS root) ignored. The mapping is the
//! `idna` crate's (the one `url` and servo use), with the rules of a host
//! name: letters, digits and hyphens only (STD3), no label starting or
//! ending with a hyphen, labels of 1–63 octets and at most 253 in all
//! (RFC 1035). Pure: no IO.

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Why a text is not a domain name. The message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainNameError {
    #[error("is empty")]
    Empty,
    #[error(
        "is not a DNS name: letters, digits and hyphens in dot-separated labels of 1 to 63 \
         characters, 253 in all, no label starting or ending with a hyphen"
    )]
    Invalid,
}

/// The name's comparison key: its A-label form, lowercase, without a
/// trailing dot (`"Müller-Bau.Example."` → `"xn--mller-bau-q9a.example"`).
pub fn domain_key(name: &str) -> Result<String, DomainNameError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(DomainNameError::Empty);
    }
    Uts46::new()
        .to_ascii(
            name.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Verify,
        )
        .map(|ascii| ascii.into_owned())
        .map_err(|_| DomainNameError::Invalid)
}

/// The key a name already in the log compares by. Names accepted before
/// this check may not be DNS names; they keep comparing as they did
/// (trimmed, ASCII lowercase), so a replay decides as before for them.
pub fn domain_key_lenient(name: &str) -> String {
    domain_key(name.trim()).unwrap_or_else(|_| name.trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (spelling, expected key). Every spelling of one name gives one key.
    #[rustfmt::skip]
    const SAME_NAME: &[(&str, &str)] = &[
        ("contoso.com", "contoso.com"),
        ("CONTOSO.COM", "contoso.com"),
        ("contoso.com.", "contoso.com"),
        ("Contoso.Com.", "contoso.com"),
        ("müller-bau.example", "xn--mller-bau-q9a.example"),
        ("MÜLLER-BAU.EXAMPLE", "xn--mller-bau-q9a.example"),
        ("xn--mller-bau-q9a.example", "xn--mller-bau-q9a.example"),
        ("XN--MLLER-BAU-Q9A.EXAMPLE", "xn--mller-bau-q9a.example"),
        // NFD: u + U+0308 COMBINING DIAERESIS.
        ("mu\u{308}ller-bau.example", "xn--mller-bau-q9a.example"),
        ("MU\u{308}LLER-BAU.EXAMPLE.", "xn--mller-bau-q9a.example"),
        // Fullwidth dot and letters map too (UTS 46).
        ("ｃｏｎｔｏｓｏ。com", "contoso.com"),
        ("straße.de", "xn--strae-oqa.de"),
        ("bücher.例え.jp", "xn--bcher-kva.xn--r8jz45g.jp"),
    ];

    #[test]
    fn spellings_of_one_name_have_one_key() {
        for &(spelling, key) in SAME_NAME {
            assert_eq!(domain_key(spelling).as_deref(), Ok(key), "{spelling:?}");
        }
    }

    #[test]
    fn different_names_have_different_keys() {
        assert_ne!(
            domain_key("muller-bau.example"),
            domain_key("müller-bau.example")
        );
        assert_ne!(domain_key("contoso.com"), domain_key("contoso.co"));
    }

    #[rustfmt::skip]
    const NOT_NAMES: &[&str] = &[
        "", ".", "contoso.com..", "..", "contoso..com", " contoso.com", "contoso .com",
        "con_toso.com", "contoso.com/x", "user@contoso.com", "-contoso.com", "contoso-.com",
        "xn--zz.com", "a\u{0}b.com", "a\nb.com", "\u{1b}[31m.com",
    ];

    #[test]
    fn text_that_is_no_dns_name_is_refused() {
        for text in NOT_NAMES {
            assert!(domain_key(text).is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn length_limits_are_rfc_1035() {
        use crate::limits::{DOMAIN_LABEL_MAX_OCTETS, DOMAIN_NAME_MAX_OCTETS};
        let label = "a".repeat(DOMAIN_LABEL_MAX_OCTETS);
        assert!(domain_key(&format!("{label}.com")).is_ok());
        assert!(domain_key(&format!("a{label}.com")).is_err());
        // 4 labels of 61 + 3 dots = 247, plus ".abcde" = 253.
        let l61 = "b".repeat(61);
        let longest = format!("{l61}.{l61}.{l61}.{l61}.abcde");
        assert_eq!(longest.len(), DOMAIN_NAME_MAX_OCTETS);
        assert!(domain_key(&longest).is_ok());
        assert!(
            domain_key(&format!("{longest}.")).is_ok(),
            "trailing dot is not counted"
        );
        assert!(domain_key(&format!("{l61}.{l61}.{l61}.{l61}.abcdef")).is_err());
        // A-label form counts: 60 ü encode to far more than 63 octets.
        assert!(domain_key(&format!("{}.com", "ü".repeat(60))).is_err());
    }

    #[test]
    fn lenient_key_keeps_old_names_comparable() {
        assert_eq!(domain_key_lenient(" Con_Toso.COM "), "con_toso.com");
        assert_eq!(domain_key_lenient("Contoso.COM."), "contoso.com");
    }
}
