"""`python -m tongdai.core.cli` = the `tongdai` command."""

from tongdai.core.cli import main

main()
