"""The built-in rule catalogue: one module per area, listed explicitly in rules.registry."""
