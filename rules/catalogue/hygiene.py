"""Operational hygiene rules: resources, probes, image tags, deprecated APIs, PDBs, priority.

Owned by the catalogue colleague; listed in rules.registry.RULE_MODULES.
"""
