"""``python -m memscore.cli``: the ``memscore`` command."""

from . import main

if __name__ == "__main__":
    main()
