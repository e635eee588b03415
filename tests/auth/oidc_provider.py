"""A small but real OpenID Connect provider for the tests: discovery, JWKS, an authorization
endpoint (the person is already signed in there: `person` says who) and a token endpoint
with client_secret_basic and PKCE S256, issuing RS256 ID tokens with its own key.

It runs as a real server on 127.0.0.1 (tests.conftest.LiveServer); the gateway talks to it
over HTTP exactly as it would to a city's unified identity platform (统一身份认证). `mode`
makes it misbehave the ways the gateway must refuse.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

MODES = (
    "normal",
    "wrong_issuer",  # signs with its key, but names another issuer
    "bad_signature",  # signs with a key that is not in its JWKS
    "replay",  # answers with the ID token it issued last time
    "unverified",  # the identity number is not marked verified
    "wrong_audience",  # the token is for another client
)


class Provider:
    def __init__(self, client_id: str = "opengate", client_secret: str = "idp-secret") -> None:
        self.issuer = ""  # set once the server has its port
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris: list[str] = []
        self.key = RSAKey.generate_key(2048, {"kid": "idp-key-1", "use": "sig"}, private=True)
        self.rogue_key = RSAKey.generate_key(2048, {"kid": "idp-key-1"}, private=True)
        self.person: dict[str, Any] = {"sub": "citizen-1", "id_number": "370202199001011237"}
        self.mode = "normal"
        self.codes: dict[str, dict[str, Any]] = {}
        self.last_id_token: str | None = None
        self.token_requests = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if (
            q.get("client_id") != self.client_id
            or q.get("redirect_uri") not in self.redirect_uris
            or q.get("response_type") != "code"
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
            or not q.get("state")
            or not q.get("nonce")
            or "openid" not in q.get("scope", "").split()
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "redirect_uri": q["redirect_uri"],
            "challenge": q["code_challenge"],
            "nonce": q["nonce"],
        }
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = dict(parse_qsl((await request.body()).decode()))
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if challenge != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if self.mode == "replay" and self.last_id_token:
            id_token = self.last_id_token
        else:
            id_token = self.id_token(nonce=grant["nonce"])
            self.last_id_token = id_token
        access = secrets.token_urlsafe(16)
        return JSONResponse({"access_token": access, "token_type": "Bearer", "id_token": id_token})

    def id_token(self, *, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.person["sub"],
            "aud": self.client_id,
            "exp": now + 300,
            "iat": now,
            "nonce": nonce,
            "jti": secrets.token_hex(8),
            "id_number": self.person["id_number"],
            "id_number_verified": self.mode != "unverified",
        }
        if self.mode == "wrong_issuer":
            claims["iss"] = "http://127.0.0.1:1/other-idp"
        if self.mode == "wrong_audience":
            claims["aud"] = "someone-else"
        key = self.rogue_key if self.mode == "bad_signature" else self.key
        return jwt.encode({"alg": "RS256", "kid": "idp-key-1"}, claims, key)
