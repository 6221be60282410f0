"""Blueprints, one per route family."""
