"""tap-personalization: the Singer tap (`tap`) and what only it uses.

`client` (the base stream), `streams`, `schemas` (record shapes) and `prefetch` (the next
export page fetched in the background). The console script runs `tap.TapPersonalization`.
"""
