"""Tria AIBPO customer-service platform."""

__version__ = "2.0.0"
