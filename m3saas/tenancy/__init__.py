"""Tenancy plumbing: the tenant context, connection registration, routing, middleware."""
