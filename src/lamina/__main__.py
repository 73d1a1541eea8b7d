"""``python -m lamina`` is the same as the ``lamina`` command."""

from lamina.cli import main

main()
