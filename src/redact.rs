//! Showing a URL that may carry a password (a proxy, the Redis store, a mistyped base URL)
//! without the password: in errors, logs and `doctor`'s report.

/// `scheme://user:password@host:port/…` with the user and password replaced by `****`.
pub(crate) fn mask_credentials(value: &str) -> String {
    let (scheme, rest) = match value.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), value),
    };
    // The authority ends at the first `/` only: a password may hold `?` or `#` (a valid URL
    // escapes them, but a mistyped one is exactly what gets shown in an error), and cutting
    // there would leave it whole. A query holding `@` is then masked too, which is harmless.
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let masked = if userinfo.contains(':') {
                "****:****"
            } else {
                "****"
            };
            format!("{scheme}{masked}@{host}{tail}")
        }
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_password_are_masked() {
        assert_eq!(
            mask_credentials("http://alice:s3cret@proxy.corp:3128"),
            "http://****:****@proxy.corp:3128"
        );
        assert_eq!(
            mask_credentials("socks5://token@proxy/x@y"),
            "socks5://****@proxy/x@y"
        );
        assert_eq!(mask_credentials("proxy.corp:3128"), "proxy.corp:3128");
        assert_eq!(
            mask_credentials("redis://:p#ss?w@store:6379/0"),
            "redis://****:****@store:6379/0"
        );
    }
}
