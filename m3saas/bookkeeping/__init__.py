"""Tables the platform keeps in every database, the master's and each tenant's."""
