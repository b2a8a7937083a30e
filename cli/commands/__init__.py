"""One module per `k8smon` sub-command group; `cli.main.COMMANDS` lists them explicitly."""
