"""The `qlora-trainer` command line."""
