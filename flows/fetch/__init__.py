"""The fetch stage: source URL -> raw bytes, politely, recorded attempt by attempt.

policy.py    what to fetch and how: timeouts, retries, limits, accepted content
guard.py     which URLs and addresses may be contacted at all
client.py    the Fetcher: one requests session, a retry loop, bodies into the raw store
limits.py    per-host spacing in a process, global per-host slots across runs
plan.py      which papers need a request this run, and the state each ends with
rawstore.py  bodies on disk, addressed by sha256
progress.py  the run's fetch progress artifact
stage.py     fetch_batch: one batch through plan -> fetch -> states and bodies
"""
