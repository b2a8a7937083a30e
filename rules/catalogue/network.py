"""Network rules: namespaces without NetworkPolicy (CIS 5.3.2), exposed Services and Ingress TLS.

Owned by the catalogue colleague; listed in rules.registry.RULE_MODULES.
"""
