"""The one network seam: the HTTP client, credentials, the AK/SK signer, IAM login."""
