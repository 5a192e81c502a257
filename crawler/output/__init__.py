"""Turning answers into files: rows, the Arrow schema, the Parquet sink, resume, the lock."""
