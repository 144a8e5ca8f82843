"""CLI command modules, one per capability (registered on the group in `elasticvit_deploy.cli`)."""
