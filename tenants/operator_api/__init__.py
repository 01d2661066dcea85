"""The operator REST API under `/operator/v1/`: tenants, subscriptions, runs, backups, API keys, the audit log.

Staff only, authenticated as the `/migrate` routes are (a staff user's DRF token; an admin
session for POST, CSRF-checked). Every write is recorded in the audit log.
"""
