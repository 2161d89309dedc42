"""``python -m pytest_tria_deploy.cli``: ``tria-deploy`` where no console script is installed."""

from pytest_tria_deploy.cli import app

app(prog_name="tria-deploy")
