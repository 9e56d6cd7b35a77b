"""``python -m latentfuse …`` is the ``latentfuse`` command (torchrun launches training this way)."""
from .cli import main

main()
