"""Building and opening the stores: load → clean → chunk → embed → Chroma + docstore/keyword index."""
