"""swr-crawler: bulk crawler for Huawei Cloud SWR tag details, written to Parquet."""

import os

# Arrow's default allocator (mimalloc or jemalloc) keeps freed row-group buffers
# resident for reuse; the system allocator gives them back. Measured on a
# 20k-target crawl: ~15 MB less peak RSS at the same speed. Set before pyarrow
# is first imported (the pool is chosen once); an explicit setting wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

__version__ = "0.1.0"

#: Sent with every request, to SWR and to IAM.
USER_AGENT = f"swr-crawler/{__version__}"

__all__ = ["USER_AGENT", "__version__"]
