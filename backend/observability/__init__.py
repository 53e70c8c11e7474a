"""Seeing the app at work: metrics, logs, request ids."""
