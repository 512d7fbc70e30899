"""Near-duplicate machinery shared by the near-dedup and decontamination stages: shingling,
vectorized MinHash signatures, LSH banding over band rows spilled to Arrow files, exact-Jaccard
verification and clusters, and exact n-gram overlap of eval texts with rows."""
