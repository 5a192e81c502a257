"""The one network seam: the transport (the only aiohttp user), the SWR client, the
plain answer types, endpoint checks, secrets and their scrubber, credentials, the
AK/SK signer and the IAM login."""
