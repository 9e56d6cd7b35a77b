"""``python -m latentfuse.cli …`` is the ``latentfuse`` command."""
from . import main

main()
