"""``python -m accelsim.cli``: the same command line as the ``accelsim`` script."""

from accelsim.cli import app

app(prog_name="accelsim")
