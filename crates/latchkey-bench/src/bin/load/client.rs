//! The driver as a client of the JSON API: enrolment through a setup link, and a password +
//! TOTP login with codes computed from the secrets the server handed out.

use anyhow::{Context, bail};
use latchkey_core::totp::{TotpParams, TotpSecret, code_at};
use serde_json::json;

use crate::{PASSWORD, http::Conn};

pub fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(0)
}

pub struct User {
    pub email: String,
    secret: TotpSecret,
    /// The last step used, so each login uses a later one.
    last_step: i64,
}

pub fn enrol(conn: &mut Conn, token: &str, email: &str) -> anyhow::Result<User> {
    let base = "/api/v1/environments/bench";
    let (_, r) = conn.post(&format!("{base}/setup-link"), &json!({"token": token}))?;
    let lt = r["login_token"]
        .as_str()
        .context("no login token")?
        .to_owned();
    conn.post(
        &format!("{base}/login/password"),
        &json!({"login_token": lt, "new_password": PASSWORD}),
    )?;
    let (_, offer) = conn.post(
        &format!("{base}/login/mfa/setup"),
        &json!({"login_token": lt}),
    )?;
    let b32 = offer["secret"].as_str().context("no secret")?;
    let bytes = decode_base32(b32).context("bad base32")?;
    let secret = TotpSecret::from_bytes(bytes);
    let t = now();
    let code = code_at(&secret, &TotpParams::default(), t);
    let (status, _) = conn.post(
        &format!("{base}/login/mfa/setup/confirm"),
        &json!({"login_token": lt, "code": code, "label": "bench"}),
    )?;
    if status != 200 {
        bail!("enrolment failed with {status}");
    }
    Ok(User {
        email: email.to_owned(),
        secret,
        last_step: t / 30,
    })
}

pub fn decode_base32(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = u32::try_from(ALPHABET.iter().position(|a| *a == c)?).ok()?;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// One password + TOTP login; the code is for the step after the user's last one. Returns the
/// session token.
pub fn login(conn: &mut Conn, user: &mut User) -> anyhow::Result<String> {
    let base = "/api/v1/environments/bench";
    let (status, r) = conn.post(
        &format!("{base}/login"),
        &json!({"email": user.email, "password": PASSWORD}),
    )?;
    if status != 200 {
        bail!("password step: {status} {r}");
    }
    let lt = r["login_token"]
        .as_str()
        .context("no login token")?
        .to_owned();
    let step = (now() / 30).max(user.last_step + 1);
    if step > now() / 30 + 1 {
        bail!("user {} has no fresh step left in the window", user.email);
    }
    user.last_step = step;
    let code = code_at(&user.secret, &TotpParams::default(), step * 30);
    let (status, r) = conn.post(
        &format!("{base}/login/mfa"),
        &json!({"login_token": lt, "code": code}),
    )?;
    if status != 200 {
        bail!("code step: {status} {r}");
    }
    Ok(r["session"]["token"]
        .as_str()
        .context("no session")?
        .to_owned())
}
