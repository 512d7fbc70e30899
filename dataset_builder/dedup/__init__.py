"""Near-duplicate machinery shared by the near-dedup and decontamination stages: shingling,
vectorized MinHash signatures, a datasketch LSH index, exact-Jaccard verification and clusters."""
