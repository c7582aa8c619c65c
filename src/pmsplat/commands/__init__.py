"""Sub-commands of the ``pmsplat`` CLI (see ``pmsplat.cli.COMMANDS``)."""
