"""Report renderers and notifiers: Slack, webhooks, PolicyReports, HTML."""
