"""The peer path: tap-salesforce-crm next to singer-io tap-salesforce 2.8.1 (REST and Bulk).

Each reads Account, Contact, Lead and CampaignMember of the seeded org into a file (page
cache; RECORD lines are counted and their Ids compared after the clock stopped) with a
catalog from its own discovery, as Meltano runs a tap. Discovery is measured once per tap
on its own. Runs are interleaved per repetition (ours through REST `queryAll` and with
`use_bulk_api` through Bulk API 2.0 query jobs, then the peer in REST and Bulk 1.0 mode,
each with every field and "narrow" with only the fields ours reads), so machine load falls
on all alike; API calls come from the sandbox's ledger.

The peer runs as its users configure it: the refresh-token flow, `select_fields_by_default`
(every field of each object), `INCREMENTAL` on `SystemModstamp` from a 2000 start date, so
it reads everything; it logs in at its hard-coded login host, which `peer_login` routes to
the sandbox. tap-salesforce-crm reads only the fields the reverse mapping needs, so the
field counts are reported next to the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emulators import defaults

from harness import peer_install, peer_login, plugins, procs
from harness.context import Context
from harness.sandbox import Server
from harness.stats import median_usage, with_rates

OBJECTS = {"accounts": "Account", "contacts": "Contact", "leads": "Lead",
           "campaign_members": "CampaignMember"}
MODES = ("REST", "BULK")
START_DATE = "2000-01-01T00:00:00Z"
REPLICATION_KEY = "SystemModstamp"
OURS = "tap-salesforce-crm"


def peer_config(api_type: str) -> dict[str, Any]:
    return {"refresh_token": defaults.SF_REFRESH_TOKEN, "client_id": defaults.SF_CLIENT_ID,
            "client_secret": defaults.SF_CLIENT_SECRET, "start_date": START_DATE,
            "api_type": api_type, "select_fields_by_default": True, "is_sandbox": True}


def peer_catalog(discovered: dict[str, Any]) -> dict[str, Any]:
    """The four objects selected, incremental on SystemModstamp; everything else off."""
    wanted = set(OBJECTS.values())
    for stream in discovered["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                meta = entry["metadata"]
                meta["selected"] = stream["tap_stream_id"] in wanted
                if REPLICATION_KEY in meta.get("valid-replication-keys", []):
                    meta.update({"replication-method": "INCREMENTAL",
                                 "replication-key": REPLICATION_KEY})
    return discovered


def narrowed(catalog: dict[str, Any], wanted: dict[str, set[str]]) -> dict[str, Any]:
    """The peer's catalog with only the fields tap-salesforce-crm reads selected per object
    (`selected: false` on the others; relationship columns such as `Campaign.Name` have no
    peer field), to tell the cost of reading every field from the cost of the tap itself."""
    catalog = json.loads(json.dumps(catalog))
    for stream in catalog["streams"]:
        fields = wanted.get(stream["tap_stream_id"])
        for entry in stream["metadata"]:
            if fields is not None and entry["breadcrumb"][:1] == ["properties"]:
                entry["metadata"]["selected"] = entry["breadcrumb"][1] in fields
    return catalog


def fields_read(catalog: dict[str, Any], names: dict[str, str]) -> dict[str, set[str]]:
    """Columns per object a sync with this catalog reads (unsupported or deselected ones
    excluded; key and replication key are always read)."""
    fields = {}
    for stream in catalog["streams"]:
        name = names.get(stream["tap_stream_id"])
        if name is None:
            continue
        left_out = {entry["breadcrumb"][1] for entry in stream["metadata"]
                    if entry["breadcrumb"][:1] == ["properties"]
                    and entry["metadata"].get("inclusion") != "automatic"
                    and (entry["metadata"].get("inclusion") == "unsupported"
                         or entry["metadata"].get("selected") is False)}
        fields[name] = set(stream["schema"]["properties"]) - left_out
    return fields


def read_output(path: Path, names: dict[str, str]) -> dict[str, list[str]]:
    """Ids per object from the RECORD messages of a tap's output."""
    ids: dict[str, list[str]] = {name: [] for name in OBJECTS.values()}
    with path.open("rb") as lines:
        for line in lines:
            if b'"RECORD"' not in line[:40]:
                continue
            message = json.loads(line)
            if message.get("type") == "RECORD":
                ids[names[message["stream"]]].append(message["record"]["Id"])
    return ids


class _Runner:
    """One tap's discovery and measured syncs against the Salesforce sandbox."""

    def __init__(self, label: str, command: list[str], sync_flag: str, sf: Server,
                 scratch: Path, names: dict[str, str], env: dict[str, str] | None) -> None:
        self.label, self.command, self.sync_flag = label, command, sync_flag
        self.sf, self.scratch, self.names, self.env = sf, scratch, names, env
        self.catalog_path = scratch / f"{label}-catalog.json"
        self.fields: dict[str, int] = {}

    def _measured(self, args: list[str], out: Path, log: Path) -> dict[str, Any]:
        self.sf.clear_ledger()
        cpu_before = self.sf.cpu_seconds()
        usage = procs.run(self.command + args, stdout=out, log=log, env=self.env)
        sandbox_cpu = round(self.sf.cpu_seconds() - cpu_before, 3)
        return {**usage.as_json(server_s=sandbox_cpu), "sandbox_cpu_s": sandbox_cpu,
                "api_calls": dict(self.sf.ledger(limit=0)["by_kind"])}

    def discover(self, select: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Measured discovery; returns its usage and the catalog the syncs will use."""
        discovered = self.scratch / f"{self.label}-discovered.json"
        usage = self._measured(["--discover"], discovered,
                               self.scratch / f"{self.label}-discover.log")
        catalog = select(json.loads(discovered.read_text()))
        self.use(catalog)
        return usage, catalog

    def use(self, catalog: dict[str, Any]) -> None:
        self.catalog_path.write_text(json.dumps(catalog))
        self.fields = {name: len(names) for name, names in
                       fields_read(catalog, self.names).items()}

    def sync(self, index: int) -> tuple[dict[str, Any], dict[str, list[str]]]:
        out = self.scratch / f"{self.label}-out.jsonl"
        usage = self._measured([self.sync_flag, str(self.catalog_path)], out,
                               self.scratch / f"{self.label}-{index}.log")
        ids = read_output(out, self.names)
        usage.update(records=sum(len(v) for v in ids.values()), output_bytes=out.stat().st_size)
        out.unlink()
        return usage, ids


def _work_dir(ctx: Context) -> Path:
    """`--work-dir`: the run's data folder is `<work-dir>/run/<size>-s<seed>`."""
    return ctx.data_dir.parents[1]


def _compare(ours: dict[str, list[str]], peer: dict[str, list[str]]) -> dict[str, Any]:
    """Whether the peer read the same records, per object."""
    return {name: {"ours": len(ours[name]), "peer": len(peer[name]),
                   "same_ids": set(ours[name]) == set(peer[name]),
                   "duplicates": len(peer[name]) - len(set(peer[name]))}
            for name in OBJECTS.values()}


def run(ctx: Context) -> dict[str, Any]:
    sf = ctx.salesforce
    peer_exe = peer_install.peer_tap(_work_dir(ctx))
    ours_config = plugins.write_config(ctx.scratch / "peer-ours.json",
                                       plugins.tap_salesforce_config(sf.url, sf.ca_bundle))
    with peer_login.routed_login(sf.url, sf.ca_bundle, ctx.scratch / "peer-login") as net:
        runners = [_Runner(OURS, [str(plugins.executable(OURS)), "--config", str(ours_config)],
                           "--catalog", sf, ctx.scratch, OBJECTS, None)]
        peer_names = {name: name for name in OBJECTS.values()}
        discovery, catalogs = {}, {}
        usage, ours_catalog = runners[0].discover(lambda catalog: catalog)
        discovery[OURS] = usage
        bulk_config = plugins.write_config(
            ctx.scratch / "peer-ours-bulk.json",
            {**plugins.tap_salesforce_config(sf.url, sf.ca_bundle), "use_bulk_api": True})
        ours_bulk = _Runner(f"{OURS}-bulk", [str(plugins.executable(OURS)), "--config",
                                             str(bulk_config)], "--catalog", sf, ctx.scratch,
                            OBJECTS, None)
        ours_bulk.use(ours_catalog)
        runners.append(ours_bulk)
        ours_fields = fields_read(ours_catalog, OBJECTS)
        for mode in MODES:
            config = plugins.write_config(ctx.scratch / f"peer-{mode.lower()}.json",
                                          peer_config(mode))
            # singer-python's taps take the catalog as --properties (it ignores --catalog).
            command = [str(peer_exe), "--config", str(config)]
            full = _Runner(f"tap-salesforce-{mode.lower()}", command, "--properties", sf,
                           ctx.scratch, peer_names, net.env)
            discovery[full.label], catalogs[mode] = full.discover(peer_catalog)
            narrow = _Runner(f"{full.label}-narrow", command, "--properties", sf, ctx.scratch,
                             peer_names, net.env)
            narrow.use(narrowed(catalogs[mode], ours_fields))
            runners += [full, narrow]
        syncs: dict[str, list[dict[str, Any]]] = {runner.label: [] for runner in runners}
        first_ids: dict[str, dict[str, list[str]]] = {}
        for index in range(ctx.repeat):
            for runner in runners:
                usage, ids = runner.sync(index)
                syncs[runner.label].append(usage)
                first_ids.setdefault(runner.label, ids)
        fields = {runner.label: runner.fields for runner in runners}
    records = sum(len(ids) for ids in first_ids[OURS].values())
    taps = {}
    for label, runs in syncs.items():
        taps[label] = {**with_rates(median_usage(runs), records),
                       "records": runs[0]["records"], "output_bytes": runs[0]["output_bytes"],
                       "api_calls": runs[0]["api_calls"],
                       "api_calls_total": sum(runs[0]["api_calls"].values()),
                       "fields": fields[label], "runs": runs}
    return {
        "status": "ok",
        "records": records,
        "rows_by_object": {name: len(ids) for name, ids in first_ids[OURS].items()},
        "peer": {"package": f"{peer_install.PACKAGE}=={peer_install.VERSION}",
                 "environment": peer_install.installed_versions(peer_exe)},
        "discovery": discovery,
        "taps": taps,
        "same_records": {label: _compare(first_ids[OURS], ids)
                         for label, ids in first_ids.items() if label != OURS},
    }
