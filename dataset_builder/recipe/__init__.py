"""The recipe: a build described as data (TOML), validated by a schema before anything runs."""
