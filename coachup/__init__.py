"""Coach Up jobs: the pure core (settings, redaction, logging, store, assessment domain).

Nothing in this package (outside `coachup.cli`, the composition root) imports Flask or Celery.
"""

__version__ = "0.1.0"
