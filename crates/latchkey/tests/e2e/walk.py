"""The browser walk of issue 5, driven by `tests/e2e/browser.rs` against a real `latchkey serve`.

Debian's chromium through Playwright (no browser download). The authenticator app is
independent of the server: the QR code is read off a screenshot with `zbarimg` and the code
computed with `oathtool`. Every page visited is saved under the output folder.

Usage: walk.py BASE_URL OPERATOR_SETUP_LINK OUT_DIR
"""

import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from playwright.sync_api import sync_playwright

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

    browser.close()

assert not csp_violations, csp_violations
print(f"walk complete: {shots} screenshots in {OUT}", flush=True)
