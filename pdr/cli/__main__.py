"""``python -m pdr.cli``: the ``pdr`` command."""

from pdr.cli import main

main()
