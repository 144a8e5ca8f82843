"""Latency-constrained evolutionary search over a supernet's space, with verification on the device.

`run.SearchRun` searches every (device, budget) pair of a `run.SearchRequest`: `evolution.Evolution` under a
latency oracle (`oracles`) for an objective (`objectives`), resumable from its saved state (`state`), measuring
where asked (`measuring`), and writes the result document (`result`).
"""
