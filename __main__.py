"""Entry point for `pulumi up` with the python language plugin; see components/program.py."""

from components.program import main

main()
