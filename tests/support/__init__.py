"""Test helpers: real services, real worker subprocesses, waiting on real conditions."""
