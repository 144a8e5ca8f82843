"""`python -m elasticvit_deploy` is the `elasticvit-deploy` command."""

from .cli import main

main()
