"""`python -m pipeline.cli`: the finer-traits command line without the console script."""

from pipeline.cli import main

main()
