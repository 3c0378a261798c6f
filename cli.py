"""The `statelang` command line, for a checkout: ``python cli.py run machine.json``.

The installed console script is `statelang.cli:main`; this file only calls it.
"""

from statelang.cli import main

if __name__ == "__main__":
    main()
