"""Latency-constrained evolutionary search over a supernet's space (the paper's search, latency-constrained), with verification."""
