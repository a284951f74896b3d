"""`python -m pipeline.cli`: the same entry point as the finer-traits command."""

from pipeline.cli import main

main()
