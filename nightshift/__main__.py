"""`python -m nightshift ...`: the same command line as `nightshift ...`."""

import sys

from nightshift.orchestrator.cli import main

if __name__ == "__main__":
    sys.exit(main())
