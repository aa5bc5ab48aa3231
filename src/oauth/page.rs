//! The sign-in page: plain HTML from the binary, no script, one stylesheet from this
//! server, every outside value escaped (`html-escape`).
//!
//! Its headers: a Content-Security-Policy that allows no script at all and no framing
//! (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for older browsers), forms
//! posting only here (and, for the redirect after approval, to the client's redirect
//! origin), `Referrer-Policy: no-referrer` (the page's URL carries the request, never the
//! key), and `Cache-Control: no-store`.

use axum::response::{IntoResponse, Response};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use http::{HeaderValue, StatusCode, header};

/// The stylesheet, served at [`STYLE_PATH`]: large type, visible focus, contrast above
/// WCAG AA, one column that fits a phone.
pub(crate) const STYLE_PATH: &str = "/oauth/sign-in.css";
pub(crate) const STYLE: &str = "\
:root{color-scheme:light dark}\
body{font:1.05rem/1.5 system-ui,sans-serif;margin:0;background:#f4f4f5;color:#18181b}\
main{max-width:28rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.5rem}\
h1{font-size:1.4rem;margin-top:0}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input[type=password]{box-sizing:border-box;width:100%;padding:.6rem;font-size:1rem;border:2px solid #52525b;border-radius:.3rem}\
button{font-size:1rem;padding:.6rem 1.2rem;margin:1rem .5rem 0 0;border-radius:.3rem;border:2px solid #1d4ed8;cursor:pointer}\
button.approve{background:#1d4ed8;color:#fff}\
button.deny{background:#fff;color:#1d4ed8}\
:focus-visible{outline:3px solid #b45309;outline-offset:2px}\
.error{border-left:4px solid #b91c1c;padding:.5rem .75rem;background:#fef2f2;color:#7f1d1d}\
.unverified{color:#92400e;font-weight:600}\
.hint{color:#3f3f46;font-size:.95rem}\
@media (prefers-color-scheme:dark){body{background:#18181b;color:#f4f4f5}main{background:#27272a}\
.hint{color:#d4d4d8}.unverified{color:#fcd34d}input[type=password]{background:#18181b;color:#f4f4f5;border-color:#a1a1aa}\
button.deny{background:#27272a;color:#bfdbfe;border-color:#bfdbfe}}\
@media (max-width:30rem){main{margin:0;border-radius:0}}";

/// What the consent form shows and carries.
pub(crate) struct Consent<'a> {
    pub client_name: Option<&'a str>,
    /// Whether the name was checked (a client ID metadata document's own host) or is just
    /// what the client registered.
    pub verified: bool,
    pub redirect_host: &'a str,
    /// The sealed pending request, posted back with the form.
    pub request: &'a str,
    pub error: Option<&'a str>,
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"{STYLE_PATH}\"></head>\
         <body><main>{body}</main></body></html>",
        text(title)
    )
}

pub(crate) fn consent(consent: &Consent<'_>) -> String {
    let name = consent.client_name.unwrap_or("An application");
    let unverified = if consent.verified {
        ""
    } else {
        " <span class=\"unverified\">(unverified: the application named itself)</span>"
    };
    let error = consent
        .error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"problem\">{}</p>",
                text(e)
            )
        })
        .unwrap_or_default();
    let described = if consent.error.is_some() {
        " aria-describedby=\"problem key-hint\" aria-invalid=\"true\" autofocus"
    } else {
        " aria-describedby=\"key-hint\" autofocus"
    };
    let body = format!(
        "<h1>Sign in to Handinger</h1>\
         <p><strong>{name}</strong>{unverified} asks to run Handinger tasks with your API key.</p>\
         <p>After you approve, you return to <strong>{host}</strong>.</p>\
         {error}\
         <form method=\"post\" action=\"/authorize\">\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\
         <label for=\"api_key\">Your Handinger API key</label>\
         <input type=\"password\" id=\"api_key\" name=\"api_key\" autocomplete=\"off\" \
          spellcheck=\"false\" required{described}>\
         <p class=\"hint\" id=\"key-hint\">It starts with hdg_live_. It is checked with Handinger, \
         then kept encrypted on this server; the application never sees it.</p>\
         <button class=\"approve\" type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
         <button class=\"deny\" type=\"submit\" name=\"action\" value=\"deny\" formnovalidate>Deny</button>\
         </form>",
        name = text(name),
        host = text(consent.redirect_host),
        request = attr(consent.request),
    );
    document("Sign in to Handinger", &body)
}

/// A page that ends the sign-in with a message (nothing is redirected).
pub(crate) fn problem(message: &str) -> String {
    let body = format!(
        "<h1>This sign-in cannot go on</h1><p class=\"error\" role=\"alert\">{}</p>\
         <p class=\"hint\">Start again from your application.</p>",
        text(message)
    );
    document("Sign-in problem", &body)
}

/// Headers every page of the sign-in carries; `form_target` is the origin the form may
/// also reach (the client's redirect, after approval).
pub(crate) fn respond(status: StatusCode, html: String, form_target: Option<&str>) -> Response {
    let form_action = match form_target {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    secure_headers(headers);
    response
}

/// The headers every OAuth answer carries: nothing cached, no referrer, no framing, no
/// sniffing.
pub(crate) fn secure_headers(headers: &mut http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

pub(crate) async fn style() -> Response {
    let mut response = STYLE.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
