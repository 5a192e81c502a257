"""``swr-crawler report``: what an output holds, for a terminal and as one HTML page."""
