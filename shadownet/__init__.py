"""shadownet: the umbrella command (``shadownet ...``) over the project's packages."""
