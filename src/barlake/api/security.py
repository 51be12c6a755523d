"""Who may do what: the bearer token that every change needs, and where reads are open.

The token comes from the environment (``LAKE_API_TOKEN``, or the variable lake.yaml's
``api.token_env`` names), never from lake.yaml itself. It is compared in constant time and never
logged or echoed: messages say what was wrong with the header, not what it held.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from barlake.errors import AuthError, UsageError


def token_from(token_env: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The token in ``token_env`` (None when unset or empty)."""
    value = (os.environ if environ is None else environ).get(token_env, "")
    return value or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None, token_env: str) -> None:
    """Refuse to serve another address than loopback without a token."""
    if token is None and not is_loopback(host):
        msg = (
            f"refusing to serve {host} without a token: set {token_env} (or bind 127.0.0.1, "
            "the default)"
        )
        raise UsageError(msg)


@dataclass(frozen=True)
class Guard:
    """The token (None: none configured) and whether reading needs it (not on loopback)."""

    token: str | None
    public_reads: bool = True
    token_env: str = "LAKE_API_TOKEN"

    def allow_change(self, authorization: str | None) -> None:
        """Raise ``AuthError`` unless ``authorization`` is ``Bearer <the token>``."""
        if self.token is None:
            msg = (
                f"this server has no API token, so it refuses changes; set {self.token_env} "
                "and restart `lake serve`"
            )
            raise AuthError(msg)
        scheme, _, given = (authorization or "").partition(" ")
        if not authorization:
            msg = "this endpoint changes the lake: send `Authorization: Bearer <token>`"
            raise AuthError(msg)
        if scheme.lower() != "bearer" or not given.strip():
            msg = "the Authorization header must be `Bearer <token>`"
            raise AuthError(msg)
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            msg = f"the bearer token is wrong; use the one in {self.token_env}"
            raise AuthError(msg)

    def allow_read(self, authorization: str | None) -> None:
        """Reads are open on loopback; elsewhere they need the token too."""
        if not self.public_reads:
            self.allow_change(authorization)
