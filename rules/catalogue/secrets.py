"""Secret-handling rules: secrets in env vars (CIS 5.4.1), literal secrets in env and ConfigMaps.

Owned by the catalogue colleague; listed in rules.registry.RULE_MODULES.
"""
