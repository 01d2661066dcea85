"""Business modules: `modules/<name>/v<N>/` is one Django app per major version."""
