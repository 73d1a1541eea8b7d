"""``python -m lamina`` is the same as the ``lamina`` command."""

from lamina.runtime.cli import main

main()
