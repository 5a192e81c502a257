"""Benchmarks: swr-crawler against the official SDK and a bare aiohttp ceiling (make bench)."""
