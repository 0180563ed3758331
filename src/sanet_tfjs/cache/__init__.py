"""A shared build cache for the pipeline's stages, in Bazel's remote-cache layout.

    key.py           the action key: what decides whether a stage is up to date, hashed
    actionresult.py  the ac/ entry: a REAPI ActionResult (output files, values, signature)
    store.py         ac/ and cas/ under an s3://, http(s):// or file:// URL
    stage.py         lookup and restore before a stage runs, upload after it built

docs/cache.md says how to use it; `python -m sanet_tfjs.cache keygen` makes a signing key.
"""
