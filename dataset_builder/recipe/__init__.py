"""The recipe: its schema and the `check` command's validation."""
