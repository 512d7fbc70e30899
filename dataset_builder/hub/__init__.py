"""The Hugging Face Hub: push a version (one commit, then a tag) and pull one (an untrusted repo, checked)."""
