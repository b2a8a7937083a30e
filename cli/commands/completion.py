"""`k8smon completion bash|zsh|fish`: the shell completion script, for `source` or `eval`."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  echo 'eval "$(k8smon completion bash)"' >> ~/.bashrc
    zsh:   echo 'eval "$(k8smon completion zsh)"' >> ~/.zshrc
    fish:  k8smon completion fish > ~/.config/fish/completions/k8smon.fish
    """
    from cli.main import main  # noqa: PLC0415 - the root group, whose commands complete

    completer = get_completion_class(shell)
    if completer is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"no completion for {shell}")
    click.echo(completer(main, {}, "k8smon", "_K8SMON_COMPLETE").source())
