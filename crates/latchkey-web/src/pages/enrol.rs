//! What the login and the account pages share about second factors: the MFA setup page, the
//! recovery codes page, and reading a code or recovery code from a form.

use askama::Template;
use latchkey_core::{SecretString, token::RecoveryCode};
use latchkey_service::factors::{FactorInput, MfaOffer};

use super::frame::Chrome;
use crate::redirect;

/// The name an authenticator gets when the form leaves it empty.
const DEFAULT_LABEL: &str = "Authenticator app";

/// The label given, or [`DEFAULT_LABEL`].
pub fn label_or_default(label: &str) -> &str {
    if label.trim().is_empty() {
        DEFAULT_LABEL
    } else {
        label
    }
}

/// A recovery code when one was typed, else the code (empty when neither was: the service
/// answers that as malformed). Returns whether it was a recovery code.
pub fn factor_of(
    code: Option<SecretString>,
    recovery_code: Option<SecretString>,
) -> (FactorInput, bool) {
    match (code, recovery_code) {
        (_, Some(r)) if !r.expose().trim().is_empty() => (FactorInput::RecoveryCode(r), true),
        (Some(c), _) => (FactorInput::Code(c), false),
        (None, _) => (FactorInput::Code(SecretString::new(String::new())), false),
    }
}

/// The MFA setup page, inside a login or from the account page.
#[derive(Template)]
#[template(path = "mfa_setup.html")]
pub struct SetupPage {
    pub chrome: Chrome,
    pub action: String,
    pub rd: String,
    pub qr_svg: String,
    pub secret_groups: String,
    pub digits: usize,
    pub label: String,
    pub error: Option<String>,
}

impl SetupPage {
    pub fn new(chrome: Chrome, action: String, rd: String, offer: &MfaOffer) -> Self {
        let secret = offer.secret.expose();
        let groups: Vec<&str> = secret
            .as_bytes()
            .chunks(4)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        // The SVG is ours (the `qrcode` crate's), inlined as markup; drop an XML prolog.
        let svg = offer.qr_svg.find("<svg").map_or("", |i| &offer.qr_svg[i..]);
        Self {
            chrome,
            action,
            rd,
            qr_svg: svg.to_owned(),
            secret_groups: groups.join(" "),
            digits: offer.params.digits().count(),
            label: DEFAULT_LABEL.into(),
            error: None,
        }
    }
}

/// The recovery codes, shown once, with a plain-text download.
#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct CodesPage {
    pub chrome: Chrome,
    pub codes: Vec<String>,
    pub download: String,
    pub next: String,
}

impl CodesPage {
    pub fn new(chrome: Chrome, codes: &[RecoveryCode], next: String) -> Self {
        let codes: Vec<String> = codes.iter().map(|c| c.expose().to_owned()).collect();
        let text = format!(
            "Latchkey recovery codes for {}. Each opens one login.\r\n{}\r\n",
            chrome.env,
            codes.join("\r\n")
        );
        let download = format!(
            "data:text/plain;charset=utf-8,{}",
            redirect::encode(&text).replace('+', "%20")
        );
        Self {
            chrome,
            codes,
            download,
            next,
        }
    }
}
