"""``python -m mlfactor``: the CLI, for images where the console script is not on PATH."""

from mlfactor.cli import main

if __name__ == "__main__":
    main()
