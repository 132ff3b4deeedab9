"""``python -m audit``: the lm-audit command line."""

from audit.cli import main

main()
