//! Partial masking.
//!
//! Characters are Unicode scalar values. A string longer than `first + last` keeps its first
//! `first` and last `last` characters and has every other character replaced by `*`.
//!
//! A string of at most `first + last` characters would otherwise come out unchanged. For it
//! the rule degrades safely: it keeps at most `first` leading characters and never more than
//! `(len - 1) / 2`, keeps no trailing characters, and stars the rest — so at least half of
//! the characters (and at least one) are always starred: `"张三"` with `first = 1, last = 1`
//! gives `"**"`, `"12345"` with `first = 3, last = 4` gives `"12***"`. The empty string
//! stays empty (there is nothing to hide).

/// Keeps the first `first` and last `last` characters of `s` and stars the others.
#[cfg(test)]
pub(crate) fn partial(s: &str, first: usize, last: usize) -> String {
    let mut out = String::with_capacity(s.len());
    partial_into(s, first, last, &mut out);
    out
}

/// Like [`partial`], appending to `out`.
pub(crate) fn partial_into(s: &str, first: usize, last: usize, out: &mut String) {
    // ASCII text (the common case) has one byte per character.
    let len = if s.is_ascii() { s.len() } else { s.chars().count() };
    let (keep_first, keep_last) = if len > first.saturating_add(last) {
        (first, last)
    } else {
        (first.min(len.saturating_sub(1) / 2), 0)
    };
    if len == s.len() {
        // One byte per character: slices are character boundaries.
        let tail = len - keep_last;
        out.reserve(len);
        out.push_str(s.get(..keep_first).unwrap_or_default());
        stars(tail - keep_first, out);
        out.push_str(s.get(tail..).unwrap_or_default());
        return;
    }
    out.reserve(s.len());
    for (i, c) in s.chars().enumerate() {
        if i < keep_first || i >= len - keep_last {
            out.push(c);
        } else {
            out.push('*');
        }
    }
}

/// Appends `n` stars, a slice at a time.
#[inline]
fn stars(mut n: usize, out: &mut String) {
    const STARS: &str = "****************************************************************";
    while n > 0 {
        let k = n.min(STARS.len());
        out.push_str(&STARS[..k]);
        n -= k;
    }
}

#[cfg(test)]
mod tests {
    use super::partial;

    #[test]
    fn phone_keeps_3_and_4() {
        assert_eq!(partial("13812345678", 3, 4), "138****5678");
    }

    #[test]
    fn unicode_is_counted_by_scalar() {
        assert_eq!(partial("张三丰", 1, 0), "张**");
        assert_eq!(partial("张三", 1, 0), "张*");
        assert_eq!(partial("欧阳娜娜", 1, 1), "欧**娜");
        assert_eq!(partial("上海市黄浦区中山东一路", 6, 0), "上海市黄浦区*****");
        assert_eq!(partial("a😀b😀c", 1, 1), "a***c");
    }

    #[test]
    fn long_ascii_strings_are_starred_to_their_length() {
        for n in [63, 64, 65, 129, 300] {
            let s = "x".repeat(n);
            assert_eq!(partial(&s, 1, 1), format!("x{}x", "*".repeat(n - 2)), "{n}");
        }
    }

    #[test]
    fn zero_keeps_star_everything() {
        assert_eq!(partial("secret", 0, 0), "******");
        assert_eq!(partial("abc", 0, 1), "**c");
    }

    #[test]
    fn short_strings_are_never_returned_unchanged() {
        assert_eq!(partial("张", 1, 0), "*");
        assert_eq!(partial("张三", 1, 1), "**");
        assert_eq!(partial("张三丰", 1, 2), "张**");
        assert_eq!(partial("12345", 3, 4), "12***");
        assert_eq!(partial("1234567", 3, 4), "123****");
        assert_eq!(partial("ab", 5, 5), "**");
        assert_eq!(partial("a", usize::MAX, usize::MAX), "*");
        assert_eq!(partial("", 3, 4), "");
        for s in ["a", "ab", "abc", "abcd", "abcde", "张三", "13812345678"] {
            for first in 0..13 {
                for last in 0..13 {
                    let out = partial(s, first, last);
                    assert_ne!(out, s, "{s} {first} {last}");
                    assert_eq!(out.chars().count(), s.chars().count());
                    let starred = out.chars().filter(|c| *c == '*').count();
                    assert!(starred >= 1);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn never_unchanged(s in "[^*]{1,20}", first in 0usize..25, last in 0usize..25) {
            let out = partial(&s, first, last);
            proptest::prop_assert_ne!(&out, &s);
            proptest::prop_assert_eq!(out.chars().count(), s.chars().count());
        }
    }
}
