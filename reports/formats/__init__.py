"""Pure output formatters for scan reports: table, JSON, SARIF 2.1.0, PolicyReport.

Each takes the JSON scan report (`contracts.findings.ScanReport`) and, where needed, rule
descriptions (`contracts.findings.RuleInfo`), and returns text or data. No I/O; they import
only `contracts` of our packages (reports must not import rules).
"""
