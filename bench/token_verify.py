"""Access-token verification rate on one core.

    python -m bench.token_verify [--seconds 3]

Two figures:
- hot: the same token verified again and again, as on the request path, where an app
  presents its token for its whole 10-minute life (the verifier's cache answers);
- cold: a different token every time, so every call checks an ES256 signature.
Bar (issue 3): ≥ 20,000 verifications/s on one core on the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from auth.principal import Authenticator
from auth.revocations import Revocations
from auth.tokens import TokenIssuer, TokenVerifier
from gateway.database import create_engine
from gateway.keys import installation_keys
from gateway.migrate import upgrade
from gateway.settings import Settings

ISSUER = "http://127.0.0.1:8000"


def rate(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            fn()
        count += 200
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", data_dir=Path(tmp))
        keys = installation_keys(settings, engine, create=True).tokens
        issuer = TokenIssuer(keys, ISSUER)
        token, _ = issuer.issue(subject="app", client_id="app", scope="data:read")
        hot_verifier = TokenVerifier(keys, ISSUER)
        hot = rate(lambda: hot_verifier.verify(token), args.seconds)
        # The whole request-path check: signature (cached) + revocation (database mirror).
        authenticator = Authenticator(TokenVerifier(keys, ISSUER), Revocations(engine))
        header = f"Bearer {token}"

        async def authenticate_loop(seconds: float) -> float:
            count, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                for _ in range(200):
                    await authenticator.authenticate(header)
                count += 200
            return count / elapsed

        full = asyncio.run(authenticate_loop(args.seconds))
        tokens = [
            issuer.issue(subject="app", client_id="app", scope="data:read")[0]
            for _ in range(20_000)
        ]
        cold_verifier = TokenVerifier(keys, ISSUER, cache_size=1)
        it = iter(tokens * 10)
        cold = rate(lambda: cold_verifier.verify(next(it)), min(args.seconds, 2.0))
    print(
        f"hot  (cached, the request path): {hot:>10,.0f} verifications/s  "
        f"(bar ≥ 20,000) {'ok' if hot >= 20_000 else 'BELOW'}"
    )
    print(f"hot + revocation check (Authenticator): {full:>10,.0f} principals/s")
    print(f"cold (ES256 signature each time): {cold:>9,.0f} verifications/s")


if __name__ == "__main__":
    main()
