"""Task modules; each exposes `register(app)`."""
