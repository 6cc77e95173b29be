"""Evaluation: gold Q&A → retrieval, answer, citation and latency metrics, for
this product and a plain llama-index baseline measured in the same run."""
