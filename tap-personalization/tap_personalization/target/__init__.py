"""target-personalization: the Singer target (`target`) and what only it uses.

`sinks`, `sync` (one run), `changes` (the reverse mapping's decisions), `identity` (who a
record means), `unchanged` and `fingerprints` (values Personalization already holds),
`writes` (what each change becomes, per Personalization object), `feeds`
and `events` (the two ways changes go), `delivery` (where feed files go), `report` and
`connection_test` (`--test`). The console script runs `target.TargetPersonalization`.
"""
