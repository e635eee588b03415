"""Signed calls (接口签名, contract §12) as a way to authenticate, beside bearer tokens: a
request carrying the signature headers and no bearer token is verified here — its body read
once (bounded) and handed on unchanged — and, when good, runs as the app: the same grants,
scopes, quotas, rate limits and audit as a token of that app, its event marked
`auth: signature`. A bad, stale or replayed signature is 401 before anything else runs.

The verifier (timestamp window, nonces on every host, constant-time compare) is
services.signing's; the secrets are auth.signing_secrets'.
"""

from __future__ import annotations

import anyio.to_thread
from starlette.types import Message, Receive, Scope

from audit.events import note_into, notes
from auth.principal import Principal
from auth.scopes import APP_SCOPE
from auth.signing_secrets import SigningSecrets
from kernel.problems import Problem
from services.signing import NONCE, NonceStore, SignatureVerifier


class SignedCalls:
    def __init__(self, store: SigningSecrets, nonces: NonceStore, max_body_bytes: int) -> None:
        self.store = store
        self.max_body_bytes = max_body_bytes
        self.verifier = SignatureVerifier(self._secret_for, nonces)

    async def _secret_for(self, client_id: str) -> bytes | None:
        cached = self.store.cached(client_id)
        if cached is not None:
            return cached[0]
        return await anyio.to_thread.run_sync(self.store.secret_for, client_id)

    @staticmethod
    def tried(headers: dict[str, str]) -> bool:
        return SignatureVerifier.is_signed(headers)

    async def authenticate(
        self, scope: Scope, receive: Receive, headers: dict[str, str]
    ) -> tuple[Principal, Receive]:
        """The app a signed request is from, and a `receive` that replays its body; a
        Problem (401, or 413 for a body over the limit) otherwise."""
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                raise Problem(400, "invalid_parameter", "请求在请求体读完之前中断")
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                raise Problem(413, "payload_too_large", "请求体过大")
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        client_id = await self.verifier.verify(
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=bytes(body),
        )
        note_into(notes(scope), detail={"auth": "signature"})
        principal = Principal(
            kind="app",
            subject=client_id,
            role=None,
            client_id=client_id,
            user_id=None,
            scopes=frozenset({APP_SCOPE}),
            token_id=f"signature:{headers.get(NONCE.lower(), '')}",
            consent_id=None,
            expires_at=0,
        )
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return principal, replay
