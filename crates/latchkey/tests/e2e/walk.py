"""The browser walk of issue 5, driven by `tests/e2e/browser.rs` against a real `latchkey serve`;
and of OpenID Connect (SPEC §9): a small application of our own, on authlib, that a user signs
into through the environment's login pages, setting up TOTP on the way.

Debian's chromium through Playwright (no browser download). The authenticator app is
independent of the server: the QR code is read off a screenshot with `zbarimg` and the code
computed with `oathtool`. Every page visited is saved under the output folder.

Usage: walk.py BASE_URL OPERATOR_SETUP_LINK OUT_DIR
"""

import html
import http.server
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import warnings
from pathlib import Path

from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from playwright.sync_api import sync_playwright
import requests

warnings.filterwarnings("ignore", message=".*authlib.jose.*")

BASE, OPERATOR_LINK, OUT = sys.argv[1], sys.argv[2], Path(sys.argv[3])
OUT.mkdir(parents=True, exist_ok=True)
PASSWORD = "a long walk past the lighthouse at dawn"
USER_EMAIL = "rosa@example.com"
shots = 0
csp_violations = []


def shot(page, name):
    global shots
    shots += 1
    path = OUT / f"{shots:02d}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"  screenshot {path.name}: {page.url}", flush=True)
    # At phone width every page fits: nothing wider than the screen.
    viewport = page.viewport_size["width"]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport, f"{name} is {width}px wide at {viewport}"


def expect_path(page, suffix):
    path = urllib.parse.urlparse(page.url).path
    assert path.endswith(suffix), f"expected a page ending {suffix}, at {page.url}"


def watch(page):
    page.on(
        "console",
        lambda m: csp_violations.append(m.text)
        if "Content Security Policy" in m.text
        else None,
    )


def totp_from_qr(page, name):
    """Read the QR element like a phone would, and answer with oathtool's code."""
    png = OUT / f"qr-{name}.png"
    page.locator("#qr").screenshot(path=str(png))
    uri = subprocess.run(
        ["zbarimg", "--raw", "-q", str(png)], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert uri.startswith("otpauth://totp/"), uri
    query = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    secret = query["secret"][0]
    # The secret printed for manual entry is the same, in groups of four.
    shown = page.locator("#secret").inner_text().replace(" ", "")
    assert shown == secret, (shown, secret)
    return secret


def code(secret):
    # Wait for a fresh step when the current one is about to end, so the code stays valid.
    if time.time() % 30 > 27:
        time.sleep(3.5)
    return subprocess.run(
        ["oathtool", "--totp", "-b", secret], check=True, capture_output=True, text=True
    ).stdout.strip()


def set_up_mfa(page, name):
    expect_path(page, "/login/mfa/setup")
    shot(page, f"{name}-mfa-setup")
    secret = totp_from_qr(page, name)
    assert page.locator("#code").get_attribute("autocomplete") == "one-time-code"
    page.fill("#code", code(secret))
    page.click("button[type=submit]")
    # The recovery codes, shown once, with a download.
    assert page.locator("#recovery-codes li").count() == 10
    first = page.locator("#recovery-codes li").first.inner_text().strip()
    assert re.fullmatch(r"[0-9a-z]{5}-[0-9a-z]{5}", first), first
    href = page.locator("a[download]").get_attribute("href")
    assert href.startswith("data:text/plain") and urllib.parse.quote(first) in href
    shot(page, f"{name}-recovery-codes")
    page.click("#continue")
    return secret


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_application_on(issuer, client_id, client_secret, port):
    """A web application on `port` that signs its users in with OpenID Connect (authlib): `/`
    sends the browser to Latchkey, `/callback` exchanges the code and checks the ID token
    against jwks. Returns its base URL."""
    meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    base = f"http://127.0.0.1:{port}"
    pending = {}

    def session():
        return OAuth2Session(
            client_id,
            client_secret,
            scope="openid profile email",
            redirect_uri=f"{base}/callback",
            code_challenge_method="S256",
        )

    class App(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body, location=None):
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body.encode())

        def do_GET(self):
            if self.path == "/":
                verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
                url, state = session().create_authorization_url(
                    meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
                )
                pending[state] = (verifier, nonce)
                return self.answer(302, "", url)
            if self.path.startswith("/callback"):
                url = f"{base}{self.path}"
                q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
                verifier, nonce = pending.pop(q["state"][0])
                assert q["iss"] == [issuer], q
                token = session().fetch_token(
                    meta["token_endpoint"], authorization_response=url, code_verifier=verifier
                )
                claims = jwt.decode(
                    token["id_token"],
                    keys,
                    claims_cls=CodeIDToken,
                    claims_options={"iss": {"essential": True, "value": issuer}},
                    claims_params={"nonce": nonce, "client_id": client_id},
                )
                claims.validate()
                who = html.escape(claims["email"])
                return self.answer(
                    200,
                    f"<!doctype html><title>Test app</title><h1 id=signed-in>Signed in as {who}</h1>"
                    f"<p id=acr>{html.escape(claims['acr'])}</p>",
                )
            self.answer(404, "not here")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return base


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])

    print("operator: first link, password, MFA setup", flush=True)
    admin_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    admin = admin_ctx.new_page()
    watch(admin)
    admin.goto(OPERATOR_LINK)
    shot(admin, "operator-setup-link")
    admin.fill("#new_password", PASSWORD)
    admin.fill("#new_password_confirm", PASSWORD)
    admin.click("button[type=submit]")
    set_up_mfa(admin, "operator")
    expect_path(admin, "/e/system/account")
    shot(admin, "operator-account")

    print("operator: create staging (MFA required), invite a user", flush=True)
    admin.goto(f"{BASE}/e/system/admin")
    shot(admin, "system-admin")
    admin.fill("#env-slug", "staging")
    admin.fill("#env-name", "Staging")
    admin.select_option("#env-policy", "required")
    admin.click("#env-create")
    assert "The environment is saved." in admin.content()
    assert admin.locator("#policy-staging").input_value() == "required"
    shot(admin, "environment-created")
    admin.goto(f"{BASE}/e/staging/admin")
    shot(admin, "staging-admin")
    admin.fill("#invite-email", USER_EMAIL)
    admin.fill("#invite-name", "Rosa")
    admin.click("#invite-submit")
    link = admin.locator("#setup-link").input_value()
    assert link.startswith(f"{BASE}/e/staging/setup?token="), link
    shot(admin, "invited")

    print("user: setup link in a second browser context, at phone width", flush=True)
    user_ctx = browser.new_context(viewport={"width": 360, "height": 740})
    user = user_ctx.new_page()
    watch(user)
    user.goto(link)
    shot(user, "user-setup-link")
    user.fill("#new_password", PASSWORD)
    user.fill("#new_password_confirm", PASSWORD)
    user.click("button[type=submit]")
    set_up_mfa(user, "user")
    expect_path(user, "/e/staging/account")
    shot(user, "user-account")

    print("operator: reset the user's MFA", flush=True)
    admin.goto(f"{BASE}/e/staging/admin?mfa=enrolled")
    assert "set up" in admin.locator("#users").inner_text()
    shot(admin, "users-with-mfa")
    admin.click(f"text={USER_EMAIL}")
    shot(admin, "user-detail")
    admin.click("text=Reset MFA")
    shot(admin, "confirm-reset-mfa")
    admin.click("button.danger")
    assert "1 authenticators were removed" in admin.content(), admin.content()
    shot(admin, "mfa-reset")

    print("user: next page load lands on the login page; sets up again", flush=True)
    user.reload()
    expect_path(user, "/e/staging/login")
    assert "Your session has ended" in user.content()
    shot(user, "user-signed-out")
    user.fill("#email", USER_EMAIL)
    user.fill("#password", PASSWORD)
    user.click("button[type=submit]")
    set_up_mfa(user, "user-again")
    expect_path(user, "/e/staging/account")
    shot(user, "user-account-again")

    print("operator: register an application; reset the user's MFA once more", flush=True)
    admin.goto(f"{BASE}/e/staging/admin/applications")
    shot(admin, "applications")
    issuer = admin.locator("#issuer").inner_text()
    assert issuer == f"{BASE}/e/staging", issuer
    admin.fill("#a-name", "Test app")
    admin.fill("#a-id", "test-app")
    app_port = free_port()
    admin.fill("#a-redirect", f"http://127.0.0.1:{app_port}/callback")
    admin.click("#a-register")
    client_secret = admin.locator("#client-secret").input_value()
    assert admin.locator("#new-client-id").inner_text() == "test-app"
    shot(admin, "application-registered")
    admin.goto(f"{BASE}/e/staging/admin?mfa=enrolled")
    admin.click(f"text={USER_EMAIL}")
    admin.click("text=Reset MFA")
    admin.click("button.danger")
    assert "1 authenticators were removed" in admin.content(), admin.content()

    print("user: signs into the application, setting up TOTP on the way in", flush=True)
    app_ctx = browser.new_context(viewport={"width": 360, "height": 740})
    app = app_ctx.new_page()
    watch(app)
    app_base = test_application_on(issuer, "test-app", client_secret, app_port)
    app.goto(f"{app_base}/")
    expect_path(app, "/e/staging/login")
    shot(app, "app-login")
    app.fill("#email", USER_EMAIL)
    app.fill("#password", PASSWORD)
    app.click("button[type=submit]")
    set_up_mfa(app, "app")
    # The recovery codes' "continue" leads back through the continue page to the application.
    app.wait_for_url(f"{app_base}/callback*", timeout=15000)
    assert app.locator("#signed-in").inner_text() == f"Signed in as {USER_EMAIL}"
    assert app.locator("#acr").inner_text() == "urn:latchkey:acr:mfa"
    shot(app, "app-signed-in")

    browser.close()

assert not csp_violations, csp_violations
print(f"walk complete: {shots} screenshots in {OUT}", flush=True)
