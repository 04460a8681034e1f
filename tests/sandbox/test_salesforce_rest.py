"""REST API of the Salesforce sandbox: paging, errors, limits, the 16 KB edge, faults."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from emulators import defaults

API = "/services/data/v59.0"


@pytest.fixture(autouse=True)
def _clean(salesforce_sandbox: Any) -> None:
    salesforce_sandbox.reset()


@pytest.fixture
def token(salesforce_sandbox: Any) -> str:
    return str(salesforce_sandbox.salesforce_token()["access_token"])


def call(sandbox: Any, token: str, method: str, path: str, **kwargs: Any
         ) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    url = path if path.startswith("https://") else f"{sandbox.url}{path}"
    return requests.request(method, url, headers=headers, verify=sandbox.ca_bundle,
                            timeout=60, **kwargs)


def seed_contacts(sandbox: Any, count: int, prefix: str = "user") -> list[str]:
    rows = [{"LastName": f"Last{i}", "Email": f"{prefix}{i:05d}@example.com"}
            for i in range(count)]
    ids: list[str] = sandbox.admin("POST", "records/Contact", json=rows)
    assert len(ids) == count
    return ids


def test_query_pages_through_next_records_url(salesforce_sandbox: Any, token: str) -> None:
    ids = seed_contacts(salesforce_sandbox, 4500)
    salesforce_sandbox.clear_ledger()

    first = call(salesforce_sandbox, token, "GET", f"{API}/query/",
                 params={"q": "SELECT Id, Email FROM Contact"})
    pages = [first.json()]
    while not pages[-1]["done"]:
        next_url = pages[-1]["nextRecordsUrl"]
        assert next_url.startswith(f"{API}/query/01g")
        pages.append(call(salesforce_sandbox, token, "GET", next_url).json())

    assert [len(page["records"]) for page in pages] == [2000, 2000, 500]
    assert {page["totalSize"] for page in pages} == {4500}
    assert "nextRecordsUrl" not in pages[-1]
    records = [record for page in pages for record in page["records"]]
    assert sorted(record["Id"] for record in records) == sorted(ids)
    assert records[0]["attributes"] == {"type": "Contact",
                                        "url": f"{API}/sobjects/Contact/{records[0]['Id']}"}
    assert salesforce_sandbox.ledger()["by_kind"] == {"rest_query": 3}


def test_batch_size_option_and_page_retry(salesforce_sandbox: Any, token: str) -> None:
    seed_contacts(salesforce_sandbox, 450)
    first = call(salesforce_sandbox, token, "GET", f"{API}/query/",
                 params={"q": "SELECT Id FROM Contact"},
                 headers={"Sforce-Query-Options": "batchSize=200"}).json()
    second = call(salesforce_sandbox, token, "GET", first["nextRecordsUrl"]).json()
    retried = call(salesforce_sandbox, token, "GET", first["nextRecordsUrl"]).json()
    last = call(salesforce_sandbox, token, "GET", second["nextRecordsUrl"]).json()

    assert (len(first["records"]), len(second["records"]), len(last["records"])) == (200, 200, 50)
    assert retried == second
    assert last["done"] is True
    skipped = call(salesforce_sandbox, token, "GET", f"{first['nextRecordsUrl'][:-3]}999")
    assert skipped.status_code == 400
    assert skipped.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_all_sees_deleted_rows(salesforce_sandbox: Any, token: str) -> None:
    record_id = seed_contacts(salesforce_sandbox, 2)[0]
    deleted = call(salesforce_sandbox, token, "DELETE", f"{API}/sobjects/Contact/{record_id}")
    assert deleted.status_code == 204

    live = call(salesforce_sandbox, token, "GET", f"{API}/query/",
                params={"q": "SELECT Id FROM Contact"}).json()
    everything = call(salesforce_sandbox, token, "GET", f"{API}/queryAll/",
                      params={"q": "SELECT Id, IsDeleted FROM Contact"}).json()
    assert live["totalSize"] == 1
    assert everything["totalSize"] == 2
    assert {r["Id"]: r["IsDeleted"] for r in everything["records"]}[record_id] is True


@pytest.mark.parametrize(("soql", "status", "code"), [
    ("SELEC Id FROM Contact", 400, "MALFORMED_QUERY"),
    ("SELECT Nope__c FROM Contact", 400, "INVALID_FIELD"),
    ("SELECT Id FROM Nothing__c", 400, "INVALID_TYPE"),
])
def test_query_errors(salesforce_sandbox: Any, token: str, soql: str, status: int,
                      code: str) -> None:
    answer = call(salesforce_sandbox, token, "GET", f"{API}/query/", params={"q": soql})
    assert answer.status_code == status
    body = answer.json()
    assert isinstance(body, list)
    assert body[0]["errorCode"] == code
    assert body[0]["message"]


def test_session_version_and_resource_errors(salesforce_sandbox: Any, token: str) -> None:
    no_session = call(salesforce_sandbox, "bogus", "GET", f"{API}/limits/")
    old_version = call(salesforce_sandbox, token, "GET", "/services/data/v19.0/limits/")
    unknown = call(salesforce_sandbox, token, "GET", f"{API}/nothing/here")

    assert no_session.status_code == 401
    assert no_session.json() == [{"message": "Session expired or invalid",
                                  "errorCode": "INVALID_SESSION_ID"}]
    assert old_version.status_code == 404
    assert old_version.json()[0]["errorCode"] == "NOT_FOUND"
    assert unknown.status_code == 404
    assert call(salesforce_sandbox, token, "GET", "/services/data/v20.0/limits/").ok
    assert call(salesforce_sandbox, token, "GET", "/services/data/v62.0/limits/").ok


def test_limit_info_counts_every_call_and_exhaustion_is_refused(
        salesforce_sandbox: Any, token: str) -> None:
    max_requests = defaults.SF_DAILY_API_REQUESTS
    first = call(salesforce_sandbox, token, "GET", f"{API}/sobjects/")
    second = call(salesforce_sandbox, token, "GET", f"{API}/sobjects/Contact/describe")
    assert first.headers["Sforce-Limit-Info"] == f"api-usage=1/{max_requests}"
    assert second.headers["Sforce-Limit-Info"] == f"api-usage=2/{max_requests}"

    salesforce_sandbox.admin("POST", "limits", json={"DailyApiRequests": {"Remaining": 1}})
    allowed = call(salesforce_sandbox, token, "GET", f"{API}/query/",
                   params={"q": "SELECT Id FROM Contact"})
    refused = call(salesforce_sandbox, token, "GET", f"{API}/query/",
                   params={"q": "SELECT Id FROM Contact"})
    limits = call(salesforce_sandbox, token, "GET", f"{API}/limits/")

    assert allowed.status_code == 200
    assert refused.status_code == 403
    assert refused.json() == [{"message": "TotalRequests Limit exceeded.",
                               "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert limits.status_code == 200
    assert limits.json()["DailyApiRequests"] == {"Max": max_requests, "Remaining": 0}


def test_in_list_of_1000_emails_exceeds_the_uri_limit(salesforce_sandbox: Any, token: str
                                                      ) -> None:
    emails = [f"someone.with.a.long.name{i:04d}@example-company.com" for i in range(1000)]
    in_list = "(" + ",".join(f"'{email}'" for email in emails) + ")"
    soql = " ".join(["SELECT Id, Email FROM Contact WHERE Email IN", in_list])
    salesforce_sandbox.clear_ledger()

    answer = call(salesforce_sandbox, token, "GET", f"{API}/query/", params={"q": soql})

    assert answer.status_code == 414
    calls = salesforce_sandbox.ledger()["calls"]
    assert [(c["kind"], c["status"]) for c in calls] == [("rest_query", 414)]


def test_oversized_headers_get_431(salesforce_sandbox: Any, token: str) -> None:
    answer = call(salesforce_sandbox, token, "GET", f"{API}/limits/",
                  headers={"X-Padding": "x" * 16_300})
    assert answer.status_code == 431


def test_sobject_rows_create_read_update_delete(salesforce_sandbox: Any, token: str) -> None:
    created = call(salesforce_sandbox, token, "POST", f"{API}/sobjects/Contact/",
                   json={"LastName": "Lovelace", "Email": "ada@example.com"})
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True
    assert body["errors"] == []
    record_id = body["id"]

    updated = call(salesforce_sandbox, token, "PATCH", f"{API}/sobjects/Contact/{record_id}",
                   json={"Title": "Countess"})
    read = call(salesforce_sandbox, token, "GET", f"{API}/sobjects/Contact/{record_id}",
                params={"fields": "Id,LastName,Title"})
    assert updated.status_code == 204
    assert read.json()["Title"] == "Countess"
    assert read.json()["attributes"]["type"] == "Contact"

    invalid = call(salesforce_sandbox, token, "POST", f"{API}/sobjects/Contact/",
                   json={"Email": "no-last-name@example.com"})
    assert invalid.status_code == 400
    assert invalid.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"

    assert call(salesforce_sandbox, token, "DELETE",
                f"{API}/sobjects/Contact/{record_id}").status_code == 204
    gone = call(salesforce_sandbox, token, "GET", f"{API}/sobjects/Contact/{record_id}")
    assert gone.status_code == 404
    rows = salesforce_sandbox.admin("GET", "records/Contact",
                                    params={"fields": "Id,Title,IsDeleted"})
    assert [(row["Title"], row["IsDeleted"]) for row in rows] == [("Countess", True)]


def test_describe_and_ledger_kinds(salesforce_sandbox: Any, token: str) -> None:
    salesforce_sandbox.clear_ledger()
    described = call(salesforce_sandbox, token, "GET", f"{API}/sobjects/Contact/describe").json()
    global_describe = call(salesforce_sandbox, token, "GET", f"{API}/sobjects/").json()
    missing = call(salesforce_sandbox, token, "GET", f"{API}/sobjects/Nothing__c/describe")
    call(salesforce_sandbox, token, "GET", f"{API}/limits/")
    call(salesforce_sandbox, token, "GET", f"{API}/query/", params={"q": "SELECT Id FROM Lead"})

    names = {field["name"] for field in described["fields"]}
    assert {"Id", "Email", "Personalization_User_Id__c"} <= names
    assert "Internal_Notes__c" not in names
    assert "Contact" in {item["name"] for item in global_describe["sobjects"]}
    assert missing.status_code == 404
    ledger = salesforce_sandbox.ledger()
    assert ledger["by_kind"] == {"describe": 3, "limits": 1, "rest_query": 1}
    assert [call["status"] for call in ledger["calls"]] == [200, 200, 404, 200, 200]


def test_503_fault_is_answered_and_ledgered(salesforce_sandbox: Any, token: str) -> None:
    salesforce_sandbox.faults(http_503_rate=1.0)
    answer = call(salesforce_sandbox, token, "GET", f"{API}/limits/")
    admin_still_works = salesforce_sandbox.admin("GET", "health")
    salesforce_sandbox.faults()
    after = call(salesforce_sandbox, token, "GET", f"{API}/limits/")

    assert answer.status_code == 503
    assert admin_still_works == {"ok": True}
    assert after.headers["Sforce-Limit-Info"].startswith("api-usage=1/")  # 503s are free
    assert [c["status"] for c in salesforce_sandbox.ledger()["calls"]
            if c["kind"] == "limits"] == [503, 200]


def test_drop_fault_closes_the_connection(salesforce_sandbox: Any, token: str) -> None:
    salesforce_sandbox.faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        call(salesforce_sandbox, token, "GET", f"{API}/limits/")
    salesforce_sandbox.faults()

    assert call(salesforce_sandbox, token, "GET", f"{API}/limits/").status_code == 200
    assert [c["status"] for c in salesforce_sandbox.ledger()["calls"]
            if c["kind"] == "limits"] == [0, 200]


def test_seeded_faults_repeat_exactly(salesforce_sandbox: Any, token: str) -> None:
    def run() -> list[int]:
        salesforce_sandbox.faults(http_503_rate=0.5, seed=7)
        statuses = [call(salesforce_sandbox, token, "GET", f"{API}/limits/").status_code
                    for _ in range(12)]
        salesforce_sandbox.faults()
        return statuses

    first, second = run(), run()
    assert first == second
    assert set(first) == {200, 503}


def test_bad_fault_settings_are_named(salesforce_sandbox: Any) -> None:
    answer = requests.post(f"{salesforce_sandbox.url}/__admin/faults",
                           json={"http_503_rate": 2}, verify=salesforce_sandbox.ca_bundle,
                           timeout=30)
    assert answer.status_code == 400
    assert "http_503_rate" in answer.json()["error"]


def test_parent_relationships_carry_their_own_attributes(salesforce_sandbox: Any,
                                                         token: str) -> None:
    account_id = salesforce_sandbox.admin("POST", "records/Account", json=[{"Name": "Acme"}])[0]
    salesforce_sandbox.admin("POST", "records/Contact", json=[
        {"LastName": "Doe", "AccountId": account_id}, {"LastName": "Loner"}])

    answer = call(salesforce_sandbox, token, "GET", f"{API}/query/",
                  params={"q": "SELECT LastName, Account.Name FROM Contact ORDER BY LastName"})

    doe, loner = answer.json()["records"]
    assert doe["Account"]["attributes"]["type"] == "Account"
    assert doe["Account"]["Name"] == "Acme"
    assert loner["Account"] is None
