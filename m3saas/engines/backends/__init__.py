"""Django database backends of our own (`ENGINE` paths), each a subclass of Django's."""
