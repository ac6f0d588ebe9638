"""Verify a back-channel logout token (Back-Channel Logout 1.0 §2.6) with authlib against the
issuer's published jwks; print its claims as JSON, or fail.

Usage: verify_logout.py ISSUER CLIENT_ID < token
"""

import json
import sys
import time
import warnings

import requests
from authlib.jose import JsonWebKey, jwt

warnings.filterwarnings("ignore", message=".*authlib.jose.*")

issuer, client_id = sys.argv[1:3]
token = sys.stdin.read().strip()
meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
claims = jwt.decode(
    token,
    keys,
    claims_options={
        "iss": {"essential": True, "value": issuer},
        "aud": {"essential": True, "value": client_id},
        "iat": {"essential": True},
        "jti": {"essential": True},
    },
)
claims.validate(now=int(time.time()))
events = claims.get("events", {})
assert "http://schemas.openid.net/event/backchannel-logout" in events, events
assert "nonce" not in claims, "a logout token carries no nonce"
assert claims.get("sid") and claims.get("sub"), claims
header = claims.header
assert header.get("typ") == "logout+jwt" and header.get("alg") == "RS256", header
print(json.dumps(dict(claims)))
