//! Text that came from a plugin or the API server, cut to a bound before it
//! is written anywhere a person reads.
//!
//! A plugin decides what its errors say and the API server echoes what it
//! refused (a 1 MB label comes back whole in a 422); copied unbounded into a
//! condition, every Warning event and every log line, one bad answer costs
//! megabytes per retry and buries everything else. Every such sink cuts to
//! [`MESSAGE_BYTES`] and says it did, so a reader knows the text goes on.

use std::borrow::Cow;

/// The most bytes a condition message, event note or log line carries.
pub const MESSAGE_BYTES: usize = 1024;

/// `text` if it fits in `max` bytes; else its start, on a character
/// boundary, and a marker saying how much was cut, together at most `max`
/// bytes.
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    // The marker's length depends on the number it carries; reserve for the
    // largest one (the whole text cut).
    let reserve = marker(text.len()).len();
    let mut end = max.saturating_sub(reserve);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{}", &text[..end], marker(text.len() - end)))
}

/// [`cut`] to [`MESSAGE_BYTES`].
pub fn message(text: &str) -> Cow<'_, str> {
    cut(text, MESSAGE_BYTES)
}

fn marker(cut_bytes: usize) -> String {
    format!("… [{cut_bytes} more bytes cut]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert!(matches!(message("fine"), Cow::Borrowed("fine")));
    }

    #[test]
    fn long_text_is_cut_visibly_within_the_bound() {
        let long = "é".repeat(600_000);
        let out = message(&long);
        assert!(out.len() <= MESSAGE_BYTES, "{}", out.len());
        assert!(out.len() > MESSAGE_BYTES - 40, "{}", out.len());
        let kept = out.split('…').next().unwrap().len();
        assert!(
            out.ends_with(&format!("… [{} more bytes cut]", long.len() - kept)),
            "{}",
            &out[out.len() - 40..]
        );
    }

    #[test]
    fn a_bound_below_the_marker_keeps_only_the_marker() {
        assert!(cut(&"x".repeat(100), 10).len() <= 30);
    }
}
