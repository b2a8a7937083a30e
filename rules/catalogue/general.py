"""General policy rules (CIS 5.6.x, 5.2.1): namespaces, default namespace use, policy mechanisms.

Owned by the catalogue colleague; listed in rules.registry.RULE_MODULES.
"""
