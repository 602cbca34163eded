"""Sub-commands of ``studio``: each module has ``register(subparsers)``; ``cli.py`` lists them."""
