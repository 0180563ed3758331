"""Fetching the upstream checkpoints: ordered sources, resume, retries, sha256 lock, atomic install.

The logic of stage `fetch`, in the parts pooch also has: `downloaders.py` brings bytes from one
kind of source (HTTP with resume and retries, Yandex.Disk's public-link API, a folder),
`fetcher.py` tries a checkpoint's sources in order and verifies and installs what one delivers,
`lock.py` holds the recorded sums; the stage (stages/fetch.py) fetches the three checkpoints
against the lock.

For each checkpoint the sources are tried in order: a mirror (folder or base URL), the upstream
Yandex.Disk public link (resolved to a direct link through Yandex.Disk's public-resource API)
and the upstream GitHub release asset. A download streams into a hidden `.part` file beside the
target, resumes it with HTTP Range after a dropped connection, retries 5xx answers and network
faults with exponential backoff, and is moved onto the final path only after its sha256 checks
out. Upstream publishes no sums, so the first successful fetch records them in a lock file that
the user commits; from then on they are enforced and a mismatch stops the build.
"""
