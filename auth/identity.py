"""Identity proofing (实名核验): the only way an identity number reaches an account.

Two sources are trusted, never the person's own say-so: an operator who checked the
person's papers (`opengate users verify-identity`, proof `operator:<name>`), and the
installation's OpenID Connect identity provider (auth/oidc.py, proof `oidc:<issuer>`).
The number itself is never stored: the account keeps its keyed HMAC (the same key marks
the rows of hosted datasets by subject), and the audit log names the identity by that HMAC.

One identity per account and one account per identity (a unique index backs the check).
Relinking an account to another identity ends every personal authorization it gave: its
consents are withdrawn, their tokens revoked on every worker, their refresh tokens spent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from auth.models import Consent, RefreshToken, User
from auth.revocations import Revocations
from auth.secrets import identity_hmac
from catalog.identifiers import is_valid_id_number
from kernel.clock import utcnow
from kernel.problems import Problem

# Consent tokens live at most the access-token lifetime; a consent key outlives them.
CONSENT_REVOCATION = timedelta(days=31)
LINKED_ELSEWHERE = "该身份已绑定其他账号，一个身份只能绑定一个账号；如有疑问请联系平台管理员"
ACCOUNT_HAS_OTHER = "该账号已绑定其他身份；更换身份须由管理员核验后办理"


def normalized_id_number(raw: str) -> str:
    """The identity number as the HMAC takes it, or a Problem (never echoing it)."""
    number = raw.strip().upper()
    if not is_valid_id_number(number):
        raise Problem(
            400, "invalid_parameter", "公民身份号码格式或校验位不正确", parameter="id_number"
        )
    return number


def identity_of(key: bytes, id_number: str) -> str:
    """The HMAC that stands for a (valid) identity number everywhere in the gateway."""
    return identity_hmac(key, normalized_id_number(id_number))


@dataclass(frozen=True)
class LinkOutcome:
    user_id: int
    identity: str  # the HMAC
    proof: str
    changed: bool
    relinked: bool
    consents_ended: int

    def audit_detail(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "proof": self.proof,
            "changed": self.changed,
            "relinked": self.relinked,
            "consents_ended": self.consents_ended,
        }


class IdentityRefused(Problem):
    """A link refused; `audit_detail` says why without the number."""

    def __init__(self, detail: str, *, identity: str, proof: str, reason: str, **extra: Any):
        super().__init__(409, "conflict", detail)
        self.audit_detail = {"identity": identity, "proof": proof, "refused": reason, **extra}


def link_identity(
    session: Session,
    *,
    user: User,
    identity: str,
    proof: str,
    revocations: Revocations,
    replace: bool = False,
) -> LinkOutcome:
    """Bind a verified identity (its HMAC) to the account. Refused, changing nothing, when
    another account holds the identity, or (unless `replace`, an operator's decision) when
    this account holds another one."""
    holder = session.exec(select(User).where(User.identity_hmac == identity)).first()
    if holder is not None and holder.id != user.id:
        raise IdentityRefused(
            LINKED_ELSEWHERE,
            identity=identity,
            proof=proof,
            reason="linked_to_other_account",
            other_user_id=holder.id,
        )
    if user.identity_hmac == identity:
        return LinkOutcome(user.id, identity, proof, False, False, 0)  # type: ignore[arg-type]
    relinked = user.identity_hmac is not None
    if relinked and not replace:
        raise IdentityRefused(
            ACCOUNT_HAS_OTHER, identity=identity, proof=proof, reason="account_has_other_identity"
        )
    now = utcnow()
    user.identity_hmac = identity
    user.identity_proof = proof[:300]
    user.identity_verified_at = now
    session.add(user)
    ended = _end_consents(session, user_id=user.id) if relinked else []  # type: ignore[arg-type]
    try:
        session.commit()
    except IntegrityError:  # another account took the identity a moment ago
        session.rollback()
        raise IdentityRefused(
            LINKED_ELSEWHERE, identity=identity, proof=proof, reason="linked_to_other_account"
        ) from None
    until = time.time() + CONSENT_REVOCATION.total_seconds()
    for consent_id in ended:
        revocations.revoke(f"consent:{consent_id}", until)
    session.refresh(user)
    return LinkOutcome(user.id, identity, proof, True, relinked, len(ended))  # type: ignore[arg-type]


def _end_consents(session: Session, *, user_id: int) -> list[int]:
    """Withdraw the account's live consents and spend their refresh tokens (same
    transaction as the new link); the consent ids, for revoking their access tokens."""
    now = utcnow()
    consents = session.exec(
        select(Consent).where(Consent.user_id == user_id, col(Consent.withdrawn_at).is_(None))
    ).all()
    for consent in consents:
        consent.withdrawn_at = now
        session.add(consent)
    refresh = session.exec(
        select(RefreshToken).where(
            RefreshToken.user_id == user_id,
            col(RefreshToken.consent_id).is_not(None),
            col(RefreshToken.revoked_at).is_(None),
        )
    ).all()
    for row in refresh:
        row.revoked_at = now
        session.add(row)
    return [c.id for c in consents]  # type: ignore[misc]
