"""Probe kinds: one module each, one async function `probe(target, ctx) -> list[Observation]`."""
