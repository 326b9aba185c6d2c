"""A minimal Django project serving django-oauth-toolkit for Latchkey's end-to-end tests."""
