"""A relying party built on authlib (PyPI), driving Latchkey's OpenID Provider.

The Rust test plays the browser. This script speaks JSON lines: it prints
{"authorize": URL} and reads back the URL the browser was sent to (the callback), or prints
{"logout": URL} and reads back where the browser ended up; it prints {"check": NAME} for each
thing it verified, and {"done": {...}} at the end. Any failure raises (exit status 1).

Usage: authlib_rp.py ISSUER CLIENT_ID CLIENT_SECRET|- REDIRECT_URI POST_LOGOUT_URI
"""

import json
import secrets
import sys
import warnings

# authlib.jose still works and is what authlib's OIDC claims classes use; its deprecation
# notice is not ours to act on.
warnings.filterwarnings("ignore", message=".*authlib.jose.*")
from urllib.parse import parse_qs, urlparse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from authlib.integrations.base_client.errors import OAuthError

issuer, client_id, secret, redirect_uri, post_logout = sys.argv[1:6]
secret = None if secret == "-" else secret


def say(**kv):
    print(json.dumps(kv), flush=True)


def check(name, ok, detail=""):
    if not ok:
        raise SystemExit(f"check failed: {name} {detail}")
    say(check=name)


meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
check("discovery issuer is byte-identical", meta["issuer"] == issuer, meta["issuer"])
check("S256 offered", "S256" in meta["code_challenge_methods_supported"])
jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
auth_method = "client_secret_basic" if secret else "none"


def session():
    return OAuth2Session(
        client_id,
        secret,
        scope="openid profile email offline_access",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method=auth_method,
        revocation_endpoint_auth_method=auth_method,
    )


def sign_in():
    """One authorization: the browser signs in; the code is exchanged and the ID token
    checked against jwks (signature, iss, aud, nonce, exp)."""
    s = session()
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = s.create_authorization_url(
        meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
    )
    say(authorize=url)
    callback = sys.stdin.readline().strip()
    q = parse_qs(urlparse(callback).query)
    check("state echoed", q.get("state") == [state], callback)
    check("RFC 9207 iss in the response", q.get("iss") == [issuer], callback)
    token = s.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    claims = jwt.decode(
        token["id_token"],
        jwks,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": issuer}},
        claims_params={"nonce": nonce, "client_id": client_id},
    )
    claims.validate()
    check("ID token signature, iss, aud, nonce and exp", claims["aud"] == client_id)
    return s, token, claims


def userinfo(access_token):
    return requests.get(
        meta["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )


def introspect(token):
    auth = (client_id, secret) if secret else None
    data = {"token": token}
    if not secret:
        data["client_id"] = client_id
    return requests.post(meta["introspection_endpoint"], data=data, auth=auth, timeout=10).json()


# 1. Sign in, userinfo, introspection.
s, token, claims = sign_in()
ui = userinfo(token["access_token"])
check("userinfo answers", ui.status_code == 200, ui.text)
info = ui.json()
check("userinfo sub is the ID token's", info["sub"] == claims["sub"])
check("email claims", info.get("email_verified") is True and "@" in info.get("email", ""))
check("amr and acr", claims["acr"].startswith("urn:latchkey:acr:") and "pwd" in claims["amr"])
check("introspection: active", introspect(token["access_token"])["active"] is True)

# 2. Refresh rotates; the used refresh token again revokes the whole family.
old_refresh = token["refresh_token"]
new = s.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
check("refresh rotates the refresh token", new["refresh_token"] != old_refresh)
check("the new access token works", userinfo(new["access_token"]).status_code == 200)
try:
    s.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
    raise SystemExit("check failed: a reused refresh token was accepted")
except OAuthError as e:
    check("a reused refresh token is invalid_grant", e.error == "invalid_grant", str(e))
try:
    s.refresh_token(meta["token_endpoint"], refresh_token=new["refresh_token"])
    raise SystemExit("check failed: the family survived a reuse")
except OAuthError as e:
    check("reuse revoked the family's refresh token", e.error == "invalid_grant", str(e))
check("reuse revoked the family's access token", userinfo(new["access_token"]).status_code == 401)

# 3. Revocation of a refresh token revokes its grant.
s, token, _ = sign_in()
s.revoke_token(meta["revocation_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token")
check("revoked refresh token: inactive", introspect(token["refresh_token"])["active"] is False)
check("revoked grant's access token: refused", userinfo(token["access_token"]).status_code == 401)

# 4. RP-initiated logout with id_token_hint ends the Latchkey session and its tokens.
s, token, claims = sign_in()
state = secrets.token_urlsafe(8)
logout = requests.Request(
    "GET",
    meta["end_session_endpoint"],
    params={
        "id_token_hint": token["id_token"],
        "post_logout_redirect_uri": post_logout,
        "state": state,
    },
).prepare().url
say(logout=logout)
landed = sys.stdin.readline().strip()
check("back at the post-logout URI", landed.startswith(post_logout), landed)
check("logout state echoed", parse_qs(urlparse(landed).query).get("state") == [state], landed)
check("after logout the access token is refused", userinfo(token["access_token"]).status_code == 401)
check("after logout the refresh token is inactive", introspect(token["refresh_token"])["active"] is False)

say(done={"sub": claims["sub"], "sid": claims["sid"]})
