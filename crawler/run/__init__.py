"""One run from start to exit status: the runner, counters, run.json, progress."""
