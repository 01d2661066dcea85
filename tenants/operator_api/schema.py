"""How the operator API's authentication reads in its OpenAPI schema."""

from __future__ import annotations

from drf_spectacular.authentication import SessionScheme


class SessionOnPostScheme(SessionScheme):
    """The admin session cookie, which counts for POST only (CSRF-checked)."""

    target_class = "tenants.api.SessionOnPostAuthentication"
    name = "adminSession"
