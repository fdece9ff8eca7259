//! The API server's answers as people read them.
//!
//! kube's `Display` of an API error repeats the whole `Status` twice
//! (`ApiError: ... Status { ... }`); users, conditions and events need the
//! server's own message, its code and its reason, once.

/// An API call's error as users need it: the API server's own message, its
/// code and reason.
pub fn concise(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => {
            anyhow::anyhow!("{} ({} {})", s.message, s.code, s.reason)
        }
        other => anyhow::Error::new(other),
    }
}

/// The HTTP code of an API error, when the server answered.
pub fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_read_as_the_servers_message() {
        let status =
            kube::core::Status::failure("secrets \"x\" is forbidden", "Forbidden").with_code(403);
        let e = kube::Error::Api(Box::new(status));
        assert_eq!(code(&e), Some(403));
        assert_eq!(
            concise(e).to_string(),
            "secrets \"x\" is forbidden (403 Forbidden)"
        );
    }
}
