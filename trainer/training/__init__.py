"""Training: the TOML settings, a published version into answer-only examples, QLoRA, and merging
an adapter into its base."""
