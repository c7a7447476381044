"""``python -m seqdl.cli``: the same as the ``seqdl`` command."""
from . import main

main()
