"""The commands that talk to Back Market, one module per group and one core function per
command: ``market`` (competitors, listings), ``prices`` (update-price), ``probe`` (probe,
recover), ``demo``. A core function takes a :class:`~bmctl.commands.run.CommandContext`
(the runtime, where rows go, where messages go) and returns an
:class:`~bmctl.commands.run.Outcome` (the failed items, or why the run stopped early);
:func:`~bmctl.commands.run.execute` runs it — recovering first for writing commands — and
maps the outcome to the exit code. The CLI parses options and calls ``bmctl.cli.command.run_command``,
which opens the runtime and the output around it. Nothing here imports the CLI."""
