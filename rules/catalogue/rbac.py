"""RBAC rules (CIS 5.1.x): secrets access, pod creation, bind/escalate/impersonate, wildcards.

Owned by the catalogue colleague; listed in rules.registry.RULE_MODULES.
"""
