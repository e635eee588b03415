"""Personal authorizations (个人授权): one live consent per person × app × dataset.

Approving again extends the live consent (its term is the later of the two ends; the
purpose and scope are the latest asked for) instead of adding a row, so 我的授权 lists each
app and dataset once. A withdrawn consent stays withdrawn (its tokens are revoked under
`consent:<id>`); approving after a withdrawal starts a new consent.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlmodel import Session, col, select

from auth.models import Consent
from auth.revocations import Revocations
from catalog.models import aware, utcnow
from catalog.problems import Problem

# Revocations of a consent's tokens are kept this long (longer than any token's life).
REVOCATION_KEPT = timedelta(days=31)


def record_approval(
    session: Session,
    *,
    user_id: int,
    client_id: str,
    dataset_id: str,
    purpose: str,
    scope: str,
    duration_days: int,
) -> Consent:
    """The person's consent for this app and dataset, made or extended; committed."""
    until = utcnow() + timedelta(days=duration_days)
    live = session.exec(
        select(Consent)
        .where(
            Consent.user_id == user_id,
            Consent.client_id == client_id,
            Consent.dataset_id == dataset_id,
            col(Consent.withdrawn_at).is_(None),
        )
        .order_by(col(Consent.id).desc())
    ).first()
    if live is None:
        live = Consent(
            user_id=user_id,
            client_id=client_id,
            dataset_id=dataset_id,
            purpose=purpose,
            scope=scope,
            expires_at=until,
        )
    else:
        live.expires_at = max(aware(live.expires_at), until)
        live.purpose = purpose
        live.scope = scope
    session.add(live)
    session.commit()
    session.refresh(live)
    return live


def withdraw(
    session: Session, *, user_id: int, consent_id: int, revocations: Revocations
) -> Consent:
    """Withdraw one of the person's consents: its tokens stop on the next request, on
    every worker. Withdrawing twice changes nothing."""
    consent = session.get(Consent, consent_id)
    if consent is None or consent.user_id != user_id:
        raise Problem(404, "not_found", f"授权 {consent_id} 不存在")
    if consent.withdrawn_at is None:
        consent.withdrawn_at = utcnow()
        session.add(consent)
        session.commit()
        revocations.revoke(f"consent:{consent_id}", time.time() + REVOCATION_KEPT.total_seconds())
    return consent
