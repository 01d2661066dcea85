"""The operators' audit log: who wrote what, when and from where (API, admin, manage.py); append-only."""
