"""WSGI entry point for any server: ``gunicorn cds_service.wsgi:app``."""

from .api import create_app

app = create_app()
