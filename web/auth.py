"""Credential check for routes that need one, ready for the JWT issue.

`@credential_required` consults the verifier registered under `app.extensions["coachup.auth"]`: a callable
taking the Flask request and returning True for a valid credential. None is registered yet, so every
request passes; the auth issue registers its JWT verifier there and these routes answer 401 without one.
"""

from __future__ import annotations

import functools

from flask import current_app, request

from .errors import ApiError

__all__ = ["credential_required", "AUTH_EXTENSION"]

AUTH_EXTENSION = "coachup.auth"


def credential_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        verify = current_app.extensions.get(AUTH_EXTENSION)
        if verify is not None and not verify(request):
            raise ApiError(401, "unauthenticated", "missing or invalid credential")
        return view(*args, **kwargs)

    wrapper.requires_credential = True  # type: ignore[attr-defined]
    return wrapper
