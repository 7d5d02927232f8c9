"""``python -m accelsim.cli``: the same command line as the ``accelsim`` script."""

from accelsim.cli import cli_main

cli_main()
