"""M3SaaS: a multi-tenant, multi-database, modular API-as-a-service."""

__version__ = "0.1.0"
