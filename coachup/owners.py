"""Owners: who a request (or a job) acts for, as a keyed hash of the token's issuer and subject.

`owner_of(hasher, issuer, subject)` is the only way an owner is made: the issuer is part of the key, so the
same `sub` from two identity providers is two owners, and the value is an HMAC (`coachup.redaction.Hasher`),
so no raw subject is ever stored, logged or queued. In development (no JWKS) every request acts for
`DEV_SUBJECT` of `DEV_ISSUER`, one owner for everything.
"""

from __future__ import annotations

from coachup.redaction import Hasher

__all__ = ["owner_of", "dev_owner", "DEV_ISSUER", "DEV_SUBJECT"]

DEV_ISSUER, DEV_SUBJECT = "coachup-dev", "dev"


def owner_of(hasher: Hasher, issuer: str, subject: str) -> str:
    """`ow:<digest>` of (issuer, subject); the separator cannot occur in a URL issuer, so pairs never collide."""
    return "ow:" + hasher.digest(f"{issuer}\n{subject}")


def dev_owner(hasher: Hasher) -> str:
    """The one owner every request acts for in development (no JWKS)."""
    return owner_of(hasher, DEV_ISSUER, DEV_SUBJECT)
