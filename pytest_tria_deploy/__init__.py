"""Tria Deploy: a pytest plugin that decides whether a Tria deployment may take traffic."""
