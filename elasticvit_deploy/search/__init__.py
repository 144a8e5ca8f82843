"""Latency-constrained evolutionary search over a supernet's space (spec section 5), with verification."""
