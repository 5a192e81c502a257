"""Turning targets into answers: the worker pool, retries, rate limits, discovery."""
