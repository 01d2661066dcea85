"""Django's MySQL/MariaDB backend, with two round trips fewer per login (see `base`)."""
