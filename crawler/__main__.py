"""`python -m crawler` is the same as the `swr-crawler` console script."""

from crawler.cli import main

if __name__ == "__main__":
    main()
