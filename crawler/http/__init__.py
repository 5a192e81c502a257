"""The one network seam: the transport (HTTP/1.1 of our own, crawler.http.h1), the SWR client, the
plain answer types, endpoint checks, secrets and their scrubber, credentials, the
AK/SK signer and the IAM login."""
