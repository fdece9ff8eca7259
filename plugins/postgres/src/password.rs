//! Passwords for the superuser, replication and user Secrets.
//!
//! A password is generated once, when its Secret does not exist yet, and
//! read back from the observed Secret ever after: a reconcile must never
//! rotate a password behind a running application's back.
//!
//! The randomness comes from the sandbox's WASI `random` (natively, the
//! OS). The plugin takes no crate for it: std's `RandomState` is keyed from
//! that source with 128 random bits per thread (the next key is that plus
//! one), and SipHash keyed that way is a pseudo-random function, so hashing
//! a counter under fresh keys yields unpredictable 64-bit words. Each
//! password draws from several keys, never reusing a word.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of generated passwords: 24 characters of 62 give about 143 bits.
pub const PASSWORD_LEN: usize = 24;

/// A fresh random password of [`PASSWORD_LEN`] alphanumeric characters
/// (alphanumeric so it needs no quoting in a URI, a shell or SQL).
pub fn generate() -> String {
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut counter = 0u64;
    while out.len() < PASSWORD_LEN {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(counter);
        counter += 1;
        let mut word = h.finish();
        // 10 characters per 64-bit word; rejection sampling keeps them
        // uniform (62 does not divide 64).
        for _ in 0..10 {
            let c = (word & 0x3f) as usize;
            word >>= 6;
            if c < ALPHABET.len() && out.len() < PASSWORD_LEN {
                out.push(ALPHABET[c] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_alphanumeric_and_differ() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }
}
