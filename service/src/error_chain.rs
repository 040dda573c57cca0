//! An error with its causes, `: `-separated: what a log line or a message
//! needs when the outermost error alone says too little (reqwest's
//! "error sending request" hides the "connection refused" beneath it).

/// `error: cause: cause of the cause: …`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_follow_the_error() {
        let io = std::io::Error::other("connection refused");
        let outer = std::io::Error::new(std::io::ErrorKind::NotConnected, io);
        assert_eq!(super::error_chain(&outer), "connection refused");
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Sending(#[source] std::io::Error);
        assert_eq!(
            super::error_chain(&Sending(std::io::Error::other("connection refused"))),
            "error sending request: connection refused"
        );
    }
}
