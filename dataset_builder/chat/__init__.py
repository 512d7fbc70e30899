"""Chat templates and the tokenizer used to count and render conversations."""
