"""tap-salesforce-crm against a mocked org (requests-mock): discovery, SOQL, bookmarks, paging."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests_mock as rm
from target_salesforce_crm import client as client_module
from target_salesforce_crm.tap.schema import FieldAccessError
from target_salesforce_crm.tap.streams import ReadCeiling, build_soql
from target_salesforce_crm.tap.tap import TapSalesforceCRM

INSTANCE = "https://org.example.com"
REST = f"{INSTANCE}/services/data/v59.0"
MAPPING = Path(__file__).resolve().parents[2] / "transforms" / "crm-to-personalization.yml"


def field(name: str, sf_type: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": sf_type, "nillable": sf_type != "id", **extra}


COMMON = [field("Id", "id"), field("IsDeleted", "boolean"), field("CreatedDate", "datetime"),
          field("LastModifiedDate", "datetime"), field("SystemModstamp", "datetime")]
DESCRIBES: dict[str, list[dict[str, Any]]] = {
    "Contact": [*COMMON, field("Email", "email"), field("Title"), field("Department"),
                field("LeadSource", "picklist"),
                field("AccountId", "reference", relationshipName="Account",
                      referenceTo=["Account"])],
    "Lead": [*COMMON, field("Email", "email"), field("Status", "picklist"),
             field("Rating", "picklist"), field("Industry", "picklist"),
             field("IsConverted", "boolean"), field("ConvertedContactId", "reference")],
    "Account": [*COMMON, field("Name"), field("Industry", "picklist"),
                field("Type", "picklist"), field("AnnualRevenue", "currency"),
                field("NumberOfEmployees", "int"), field("Personalization_Account_Id__c")],
    "CampaignMember": [*COMMON, field("CampaignId", "reference", relationshipName="Campaign",
                                      referenceTo=["Campaign"]),
                       field("ContactId", "reference"), field("LeadId", "reference"),
                       field("Status"), field("HasResponded", "boolean")],
    "Campaign": [*COMMON, field("Name")],
}


def config(**extra: Any) -> dict[str, Any]:
    return {"session_id": "00Dx!token", "instance_url": INSTANCE, "mapping_file": str(MAPPING),
            "max_retries": 0, **extra}


def mock_describes(mock: rm.Mocker) -> rm.Mocker:
    """Describes for the five objects; queries are registered per test."""
    for name, fields in DESCRIBES.items():
        mock.get(f"{REST}/sobjects/{name}/describe",
                 json={"name": name, "queryable": True, "fields": fields})
    return mock


@pytest.fixture
def org(requests_mock: rm.Mocker, monkeypatch: pytest.MonkeyPatch) -> rm.Mocker:
    monkeypatch.setattr(client_module, "sleep", lambda seconds: None)  # the read ceiling's wait
    return mock_describes(requests_mock)


def soql_of(request: Any) -> str:
    return parse_qs(urlparse(request.url).query)["q"][0]


def queries(mock: rm.Mocker) -> list[str]:
    return [soql_of(r) for r in mock.request_history if "/queryAll/" in r.url]


def answer_queries(mock: rm.Mocker, rows_by_object: dict[str, list[dict[str, Any]]]) -> None:
    """One page per object, chosen by the FROM clause."""
    def reply(request: Any, context: Any) -> dict[str, Any]:
        sobject = re.search(r" FROM (\w+)", soql_of(request)).group(1)
        rows = rows_by_object.get(sobject, [])
        return {"totalSize": len(rows), "done": True, "records": [
            {"attributes": {"type": sobject, "url": "/x"}, **row} for row in rows]}
    mock.get(re.compile(rf"{re.escape(REST)}/queryAll/\?"), json=reply)


def run_sync(tap: TapSalesforceCRM) -> list[dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def records(messages: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == stream]


def final_state(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return [m for m in messages if m["type"] == "STATE"][-1]["value"]


def only(tap: TapSalesforceCRM, *names: str) -> TapSalesforceCRM:
    for stream in tap.streams.values():
        stream.selected = stream.name in names
    return tap


# -- SOQL -------------------------------------------------------------------------------------

def test_soql_without_bookmark_reads_everything_in_key_order() -> None:
    statement = build_soql("Contact", ["Id", "Email"], replication_key="SystemModstamp",
                           start=None)
    assert statement == "SELECT Id, Email FROM Contact ORDER BY SystemModstamp ASC, Id ASC"


def test_soql_with_start_uses_inclusive_unquoted_datetime_literal() -> None:
    start = dt.datetime(2024, 3, 1, 10, 30, 15, 999000, tzinfo=dt.UTC)
    statement = build_soql("CampaignMember", ["Id", "Campaign.Name"],
                           replication_key="SystemModstamp", start=start, limit=2)
    assert statement == (
        "SELECT Id, Campaign.Name FROM CampaignMember WHERE SystemModstamp >= "
        "2024-03-01T10:30:15Z ORDER BY SystemModstamp ASC, Id ASC LIMIT 2"
    )


def test_soql_with_a_ceiling_bounds_the_key_from_above() -> None:
    statement = build_soql("Contact", ["Id"], replication_key="SystemModstamp",
                           start=dt.datetime(2024, 3, 1, 10, 0, 0, tzinfo=dt.UTC),
                           end=dt.datetime(2024, 3, 2, 8, 15, 7, tzinfo=dt.UTC))
    assert statement == (
        "SELECT Id FROM Contact WHERE SystemModstamp >= 2024-03-01T10:00:00Z AND "
        "SystemModstamp <= 2024-03-02T08:15:07Z ORDER BY SystemModstamp ASC, Id ASC"
    )


def test_read_ceiling_is_the_next_whole_second_once_it_has_passed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []
    monkeypatch.setattr(client_module, "sleep", waited.append)
    moments = iter([dt.datetime(2024, 3, 2, 8, 15, 7, 250_000, tzinfo=dt.UTC),
                    dt.datetime(2024, 3, 2, 9, 0, 0, tzinfo=dt.UTC)])
    ceiling = ReadCeiling(now=lambda: next(moments))

    assert ceiling() == dt.datetime(2024, 3, 2, 8, 15, 8, tzinfo=dt.UTC)
    assert ceiling() == dt.datetime(2024, 3, 2, 8, 15, 8, tzinfo=dt.UTC)  # one per run
    assert waited == [0.75]


def test_soql_refuses_names_that_are_not_identifiers() -> None:
    with pytest.raises(Exception, match="Not a Salesforce field"):
        build_soql("Contact", ["Id", "Email FROM User --"], replication_key=None, start=None)


# -- discovery --------------------------------------------------------------------------------

def test_discovery_builds_typed_schemas_from_describe(org: rm.Mocker) -> None:
    tap = TapSalesforceCRM(config=config())
    streams = tap.streams
    assert set(streams) == {"contacts", "leads", "accounts", "campaign_members"}
    contacts = streams["contacts"].schema["properties"]
    assert set(contacts) == {"Id", "Email", "IsDeleted", "Title", "Department", "LeadSource",
                             "SystemModstamp"}
    assert contacts["SystemModstamp"] == {"type": ["string", "null"], "format": "date-time"}
    accounts = streams["accounts"].schema["properties"]
    assert accounts["AnnualRevenue"]["type"] == ["number", "null"]
    assert accounts["NumberOfEmployees"]["type"] == ["integer", "null"]
    leads = streams["leads"].schema["properties"]
    assert {"IsConverted", "ConvertedContactId", "Status", "Rating", "Industry"} <= set(leads)
    members = streams["campaign_members"].schema["properties"]
    assert members["Campaign"]["properties"] == {"Name": {"type": ["string", "null"]}}
    assert members["HasResponded"]["type"] == ["boolean", "null"]
    assert all(s.replication_key == "SystemModstamp" for s in streams.values())
    assert all(s.is_sorted for s in streams.values())
    describes = [r.url for r in org.request_history if r.url.endswith("/describe")]
    assert len(describes) == 5  # four objects and Campaign, for Campaign.Name


def test_catalog_marks_key_stamp_and_deletion_flag_automatic(org: rm.Mocker) -> None:
    catalog = TapSalesforceCRM(config=config()).catalog_dict
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == "contacts")
    inclusion = {tuple(m["breadcrumb"]): m["metadata"].get("inclusion") for m in entry["metadata"]}
    assert inclusion[("properties", "Id")] == "automatic"
    assert inclusion[("properties", "SystemModstamp")] == "automatic"
    assert inclusion[("properties", "IsDeleted")] == "automatic"
    assert inclusion[("properties", "Title")] == "available"


def test_hidden_mapping_field_fails_discovery_naming_object_field_and_permission(
    org: rm.Mocker,
) -> None:
    fields = [f for f in DESCRIBES["Contact"] if f["name"] != "Department"]
    org.get(f"{REST}/sobjects/Contact/describe", json={"name": "Contact", "fields": fields})
    with pytest.raises(FieldAccessError) as caught:
        _ = TapSalesforceCRM(config=config()).streams
    message = str(caught.value)
    assert "Contact field(s) not readable by the integration user: Department" in message
    assert f"named in mapping file {MAPPING}" in message
    assert "Field-Level Security" in message


def test_extra_fields_add_plain_and_relationship_fields(org: rm.Mocker) -> None:
    tap = TapSalesforceCRM(config=config(extra_fields={"contacts": ["CreatedDate",
                                                                    "Account.Name"]}))
    contacts = tap.streams["contacts"].schema["properties"]
    assert contacts["CreatedDate"]["format"] == "date-time"
    assert contacts["Account"]["properties"]["Name"] == {"type": ["string", "null"]}


def test_extra_fields_for_an_unknown_stream_is_a_config_error(org: rm.Mocker) -> None:
    with pytest.raises(Exception, match=r"extra_fields: unknown stream.*contact"):
        _ = TapSalesforceCRM(config=config(extra_fields={"contact": ["Phone"]})).streams


def test_object_without_systemmodstamp_falls_back_to_lastmodifieddate(org: rm.Mocker) -> None:
    fields = [f for f in DESCRIBES["Account"] if f["name"] != "SystemModstamp"]
    org.get(f"{REST}/sobjects/Account/describe", json={"name": "Account", "fields": fields})
    assert TapSalesforceCRM(config=config()).streams["accounts"].replication_key == \
        "LastModifiedDate"


def test_a_sync_with_catalog_makes_no_describe_call(org: rm.Mocker) -> None:
    catalog = TapSalesforceCRM(config=config()).catalog_dict
    org.reset_mock()
    answer_queries(org, {})
    tap = TapSalesforceCRM(config=config(), catalog=catalog)
    run_sync(only(tap, "campaign_members"))
    assert [r.url for r in org.request_history if "/describe" in r.url] == []
    (statement,) = queries(org)
    assert statement.startswith(
        "SELECT Id, CampaignId, Campaign.Name, ContactId, LeadId, Status, HasResponded, "
        "IsDeleted, SystemModstamp FROM CampaignMember")


# -- incremental sync -------------------------------------------------------------------------

CONTACT_ROWS = [
    {"Id": "003A", "Email": "a@x.com", "IsDeleted": False, "Title": "CTO", "Department": None,
     "LeadSource": "Web", "SystemModstamp": "2024-05-01T10:00:00.000+0000"},
    {"Id": "003B", "Email": "b@x.com", "IsDeleted": True, "Title": None, "Department": None,
     "LeadSource": None, "SystemModstamp": "2024-05-02T11:30:00.250+0000"},
]


def test_first_sync_reads_all_with_queryall_and_bookmarks_the_last_stamp(org: rm.Mocker) -> None:
    answer_queries(org, {"Contact": CONTACT_ROWS})
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    messages = run_sync(only(TapSalesforceCRM(config=config()), "contacts"))
    after = dt.datetime.now(dt.UTC)
    (statement,) = queries(org)
    # No lower bound on a first sync; the upper bound is the second after the sync began.
    ceiling = re.search(r"FROM Contact WHERE SystemModstamp <= (\S+) ORDER BY SystemModstamp "
                        r"ASC, Id ASC$", statement)
    assert ceiling is not None, statement
    assert before < dt.datetime.fromisoformat(ceiling.group(1)) <= \
        after.replace(microsecond=0) + dt.timedelta(seconds=1)
    got = records(messages, "contacts")
    assert [r["Id"] for r in got] == ["003A", "003B"]
    assert got[1]["IsDeleted"] is True  # deletions are emitted, not dropped
    assert got[0]["SystemModstamp"] == "2024-05-01T10:00:00.000Z"
    bookmark = final_state(messages)["bookmarks"]["contacts"]
    assert bookmark["replication_key"] == "SystemModstamp"
    assert bookmark["replication_key_value"] == "2024-05-02T11:30:00.250Z"


def test_incremental_sync_starts_at_bookmark_minus_lookback(org: rm.Mocker) -> None:
    answer_queries(org, {"Contact": CONTACT_ROWS[1:]})
    state = {"bookmarks": {"contacts": {"replication_key": "SystemModstamp",
                                        "replication_key_value": "2024-05-02T11:30:00.250Z"}}}
    tap = TapSalesforceCRM(config=config(lookback_minutes=10), state=state)
    messages = run_sync(only(tap, "contacts"))
    (statement,) = queries(org)
    assert re.search(r"WHERE SystemModstamp >= 2024-05-02T11:20:00Z AND SystemModstamp <= "
                     r"\S+Z ORDER BY", statement), statement
    assert [r["Id"] for r in records(messages, "contacts")] == ["003B"]
    bookmark = final_state(messages)["bookmarks"]["contacts"]["replication_key_value"]
    assert bookmark == "2024-05-02T11:30:00.250Z"


def test_lookback_overlap_rows_are_emitted_and_bookmark_ends_at_newest(org: rm.Mocker) -> None:
    older = {**CONTACT_ROWS[0], "SystemModstamp": "2024-05-02T11:25:00.000+0000"}
    newer = {**CONTACT_ROWS[0], "Id": "003C", "SystemModstamp": "2024-05-02T12:00:00.000+0000"}
    answer_queries(org, {"Contact": [older, CONTACT_ROWS[1], newer]})
    state = {"bookmarks": {"contacts": {"replication_key": "SystemModstamp",
                                        "replication_key_value": "2024-05-02T11:30:00.250Z"}}}
    tap = TapSalesforceCRM(config=config(lookback_minutes=10), state=state)
    messages = run_sync(only(tap, "contacts"))
    assert [r["Id"] for r in records(messages, "contacts")] == ["003A", "003B", "003C"]
    assert final_state(messages)["bookmarks"]["contacts"]["replication_key_value"] == \
        "2024-05-02T12:00:00.000Z"


def test_start_date_bounds_the_first_sync_and_the_lookback(org: rm.Mocker) -> None:
    answer_queries(org, {})
    run_sync(only(TapSalesforceCRM(config=config(start_date="2024-04-01T00:00:00Z")),
                  "contacts"))
    state = {"bookmarks": {"contacts": {"replication_key": "SystemModstamp",
                                        "replication_key_value": "2024-04-01T00:03:00.000Z"}}}
    tap = TapSalesforceCRM(config=config(start_date="2024-04-01T00:00:00Z",
                                         lookback_minutes=60), state=state)
    run_sync(only(tap, "contacts"))
    first, second = queries(org)
    assert "WHERE SystemModstamp >= 2024-04-01T00:00:00Z" in first
    assert "WHERE SystemModstamp >= 2024-04-01T00:00:00Z" in second  # not 2024-03-31T23:03


def test_paging_follows_next_records_url_until_done(org: rm.Mocker) -> None:
    def row(i: int) -> dict[str, Any]:
        return {"attributes": {"type": "Account"}, "Id": f"001{i:03d}", "IsDeleted": False,
                "Name": f"A{i}", "Industry": "Media", "Type": None, "AnnualRevenue": 1.5 * i,
                "NumberOfEmployees": i, "Personalization_Account_Id__c": f"acc-{i}",
                "SystemModstamp": f"2024-05-01T10:00:{i:02d}.000+0000"}
    org.get(re.compile(rf"{re.escape(REST)}/queryAll/\?"), json={
        "totalSize": 5, "done": False, "nextRecordsUrl": "/services/data/v59.0/query/01gX-2",
        "records": [row(0), row(1)]})
    org.get(f"{REST}/query/01gX-2", json={
        "totalSize": 5, "done": False, "nextRecordsUrl": "/services/data/v59.0/query/01gX-4",
        "records": [row(2), row(3)]})
    org.get(f"{REST}/query/01gX-4", json={"totalSize": 5, "done": True, "records": [row(4)]})
    messages = run_sync(only(TapSalesforceCRM(config=config()), "accounts"))
    got = records(messages, "accounts")
    assert [r["Id"] for r in got] == [f"001{i:03d}" for i in range(5)]
    assert got[3]["AnnualRevenue"] == 4.5
    assert got[3]["NumberOfEmployees"] == 3
    pages = [r.url for r in org.request_history if "/query" in r.url]
    assert len(pages) == 3
    assert final_state(messages)["bookmarks"]["accounts"]["replication_key_value"] == \
        "2024-05-01T10:00:04.000Z"


def test_campaign_members_carry_the_campaign_name_nested(org: rm.Mocker) -> None:
    answer_queries(org, {"CampaignMember": [
        {"Id": "00v1", "CampaignId": "7011", "Campaign": {"attributes": {"type": "Campaign"},
                                                          "Name": "Spring Webinar 2026"},
         "ContactId": "003A", "LeadId": None, "Status": "Sent", "HasResponded": False,
         "IsDeleted": False, "SystemModstamp": "2024-05-01T10:00:00.000+0000"},
        {"Id": "00v2", "CampaignId": "7012", "Campaign": None, "ContactId": None,
         "LeadId": "00QA", "Status": "Responded", "HasResponded": True, "IsDeleted": True,
         "SystemModstamp": "2024-05-01T10:00:01.000+0000"},
    ]})
    got = records(run_sync(only(TapSalesforceCRM(config=config()), "campaign_members")),
                  "campaign_members")
    assert got[0]["Campaign"] == {"Name": "Spring Webinar 2026"}
    assert got[1]["Campaign"] is None
    assert got[1]["IsDeleted"] is True


def test_a_row_changed_while_being_read_is_left_for_the_next_run(org: rm.Mocker) -> None:
    # The cursor ordered 003A first; it was changed before its page was read, so it comes
    # back with a stamp after this run's ceiling, ahead of 003B.
    changed = {**CONTACT_ROWS[0], "Title": "CEO", "SystemModstamp": "2999-01-01T00:00:00.000+0000"}
    answer_queries(org, {"Contact": [changed, CONTACT_ROWS[1]]})

    messages = run_sync(only(TapSalesforceCRM(config=config()), "contacts"))

    assert [r["Id"] for r in records(messages, "contacts")] == ["003B"]
    bookmark = final_state(messages)["bookmarks"]["contacts"]["replication_key_value"]
    assert bookmark == "2024-05-02T11:30:00.250Z"  # the next run starts below 003A's change


def test_rows_out_of_key_order_stop_the_stream(org: rm.Mocker) -> None:
    answer_queries(org, {"Contact": list(reversed(CONTACT_ROWS))})
    with pytest.raises(Exception, match="not in key order"):
        run_sync(only(TapSalesforceCRM(config=config()), "contacts"))


def test_field_hidden_after_discovery_gives_an_actionable_error(org: rm.Mocker) -> None:
    catalog = TapSalesforceCRM(config=config()).catalog_dict
    org.get(re.compile(rf"{re.escape(REST)}/queryAll/\?"), status_code=400, json=[
        {"errorCode": "INVALID_FIELD", "message": "No such column 'Department' on entity "
                                                  "'Contact'."}])
    tap = TapSalesforceCRM(config=config(), catalog=catalog)
    with pytest.raises(FieldAccessError, match="Grant the integration user Read access"):
        run_sync(only(tap, "contacts"))


def test_connection_test_reads_at_most_two_rows_per_stream(org: rm.Mocker) -> None:
    answer_queries(org, {"Contact": CONTACT_ROWS})
    tap = TapSalesforceCRM(config=config())
    with redirect_stdout(io.StringIO()):
        assert tap.run_connection_test()
    statements = queries(org)
    assert len(statements) == 4
    assert all(s.endswith(" LIMIT 2") for s in statements)


def test_negative_lookback_is_refused_before_any_call(org: rm.Mocker) -> None:
    with pytest.raises(Exception, match="lookback_minutes: -5 would start after the bookmark"):
        _ = TapSalesforceCRM(config=config(lookback_minutes=-5)).streams
    assert org.request_history == []
