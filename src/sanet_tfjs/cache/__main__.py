"""python -m sanet_tfjs.cache keygen: a new ed25519 key pair for signing ac/ entries.

Prints the public key (for cache.public_key in pipeline.yaml) and the private key (for the
writers' SANET_CACHE_SIGNING_KEY secret, never for a file in the repository).
"""

from __future__ import annotations

import sys


def keygen() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    secret = private.private_bytes(
        raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return public.hex(), secret.hex()


if __name__ == "__main__":
    if sys.argv[1:] != ["keygen"]:
        sys.exit("usage: python -m sanet_tfjs.cache keygen")
    public, secret = keygen()
    print(f"cache.public_key (pipeline.yaml):  {public}")
    print(f"SANET_CACHE_SIGNING_KEY (secret):  {secret}")
