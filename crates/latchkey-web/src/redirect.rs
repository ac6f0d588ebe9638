//! Where a browser may be sent back to after a login (`rd`, SPEC §5.2, §6): a path on this
//! server, or an `http(s)` URL whose host is in `allowed_redirect_hosts` (any port). Anything
//! else — other hosts, user-info tricks, other schemes, protocol-relative paths — is ignored,
//! never followed: an open redirect on a login page is a phishing tool.

use crate::state::WebConfig;

/// The longest `rd` considered.
const MAX_RD: usize = 2048;

/// `rd` if it may be followed, normalised; `None` otherwise.
pub fn allowed(web: &WebConfig, rd: &str) -> Option<String> {
    let rd = rd.trim();
    if rd.is_empty() || rd.len() > MAX_RD || rd.chars().any(char::is_control) {
        return None;
    }
    if rd.starts_with('/') {
        // A path on this server; `//host` and `/\host` are other hosts to a browser.
        if rd.starts_with("//") || rd.starts_with("/\\") || rd.contains('\\') {
            return None;
        }
        let base = url::Url::parse(&format!("{}/", web.public_url)).ok()?;
        let joined = base.join(rd).ok()?;
        // Dot segments are removed by the join: `/.//evil` becomes `//evil`, another host to a
        // browser. What is returned is checked, not only what was given.
        if joined.path().starts_with("//") || joined.path().contains('\\') {
            return None;
        }
        return (joined.origin() == base.origin()).then(|| {
            let mut path = joined.path().to_owned();
            if let Some(q) = joined.query() {
                path.push('?');
                path.push_str(q);
            }
            path
        });
    }
    let url = url::Url::parse(rd).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
        return None;
    }
    if url.password().is_some() {
        return None;
    }
    // The parser has put the host in ASCII (punycode) and lower case.
    let host = url.host_str()?.trim_end_matches('.').to_owned();
    web.allowed_redirect_hosts
        .contains(&host)
        .then(|| url.to_string())
}

/// `value` percent-encoded for a query string.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> WebConfig {
        WebConfig::for_public_url("https://auth.example.com", vec![])
            .with_redirect_hosts(&["app.example.com".into(), "Wiki.Example.com".into()])
    }

    #[test]
    fn only_listed_hosts_and_own_paths_are_followed() {
        let w = web();
        for ok in [
            "https://app.example.com/dashboard?x=1",
            "http://app.example.com:8443/",
            "https://wiki.example.com/page",
            "https://APP.example.com./",
        ] {
            assert!(allowed(&w, ok).is_some(), "{ok}");
        }
        assert_eq!(
            allowed(&w, "/e/prod/account").as_deref(),
            Some("/e/prod/account")
        );
        for bad in [
            "https://evil.example/",
            "https://app.example.com.evil.example/",
            "https://app.example.com@evil.example/",
            "https://user:pw@app.example.com/",
            "//evil.example/",
            "/\\evil.example/",
            "/ok\\..\\",
            "javascript:alert(1)",
            "data:text/html,hi",
            "ftp://app.example.com/",
            "https://evil.example\\@app.example.com/",
            "app.example.com/dashboard",
            "",
            "https://app.example.com/\nSet-Cookie: x",
            "/.//evil.example",
            "/..//evil.example",
            "/%2e//evil.example",
            "/%2e%2e//evil.example",
            "/a/..//evil.example/x",
            "/./\\evil.example",
        ] {
            assert_eq!(allowed(&w, bad), None, "{bad:?}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_RD));
        assert_eq!(allowed(&w, &long), None);
    }

    #[test]
    fn international_hosts_compare_as_a_browser_writes_them() {
        let w = WebConfig::for_public_url("https://auth.example.com", vec![])
            .with_redirect_hosts(&["Bücher.example".into()]);
        assert_eq!(w.allowed_redirect_hosts, ["xn--bcher-kva.example"]);
        assert!(allowed(&w, "https://bücher.example/x").is_some());
        assert!(allowed(&w, "https://xn--bcher-kva.example/x").is_some());
        assert_eq!(
            WebConfig::for_public_url("https://Bücher.example:443", vec![]).public_origin,
            "https://xn--bcher-kva.example"
        );
    }
}
