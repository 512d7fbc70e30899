"""The Hugging Face Hub: reachability, push and pull."""
