"""swr-crawler: bulk crawler for Huawei Cloud SWR tag details, written to Parquet."""

__version__ = "0.1.0"

__all__ = ["__version__"]
