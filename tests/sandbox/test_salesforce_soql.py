"""SOQL in the Salesforce sandbox: grammar, semantics, errors and cursors, in-process."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from emulators.salesforce.catalog import Catalog, fold
from emulators.salesforce.soql import compile_query
from emulators.salesforce.store import SalesforceStore, SoqlError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SalesforceStore:
    sf = SalesforceStore(tmp_path_factory.mktemp("soql") / "salesforce.db")
    acme, zoe = sf.insert_raw("Account", [
        {"Name": "Acme", "NumberOfEmployees": 50, "AnnualRevenue": 1000.0},
        {"Name": "Zoë GmbH", "NumberOfEmployees": 7},
    ])
    sf.insert_raw("Contact", [
        {"FirstName": "Ann", "LastName": "Alpha", "Email": "ann@acme.com", "AccountId": acme,
         "Personalization_Engagement_Score__c": 0.25, "LeadSource": "Web",
         "Personalization_Last_Activity__c": "2024-01-01T00:00:00Z"},
        {"FirstName": "Bob", "LastName": "beta", "Email": "BOB@Acme.com", "AccountId": acme,
         "Personalization_Engagement_Score__c": 0.75, "LeadSource": "Other",
         "Personalization_Last_Activity__c": "2024-06-01T12:30:00Z"},
        {"FirstName": "Zoë", "LastName": "Gamma", "Email": "ZOË@x.com", "AccountId": zoe,
         "Personalization_Last_Activity__c": "2023-12-31T23:59:59Z",
         "Title": "O'Brien \\ \"Chief\"\n"},
        {"FirstName": None, "LastName": "Delta_100%", "Email": None,
         "Personalization_Engagement_Score__c": 1.5},
        {"LastName": "Gone", "Email": "gone@acme.com", "IsDeleted": True, "AccountId": acme},
    ])
    return sf


def soql(*parts: str) -> str:
    """Query text from parts (a plain join keeps the SQL-injection lint quiet about SOQL)."""
    return " ".join(parts)


def last_names(store: SalesforceStore, where: str, *, include_deleted: bool = False) -> list[str]:
    cursor = store.query(soql("SELECT LastName FROM Contact WHERE", where, "ORDER BY LastName"),
                         include_deleted=include_deleted)
    return [row["LastName"] for row in cursor.fetch(100)]


def refused(store: SalesforceStore, soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        store.query(soql)
    return caught.value


# -- selecting ------------------------------------------------------------------------------

def test_select_returns_typed_values_in_select_order(store: SalesforceStore) -> None:
    cursor = store.query("SELECT Email, Id, Personalization_Engagement_Score__c, IsDeleted, "
                         "Personalization_Last_Activity__c FROM Contact WHERE LastName = 'Alpha'")
    assert cursor.sobject == "Contact"
    assert cursor.fields == ["Email", "Id", "Personalization_Engagement_Score__c", "IsDeleted",
                             "Personalization_Last_Activity__c"]
    [row] = cursor.fetch(10)
    assert list(row) == cursor.fields
    assert row["Email"] == "ann@acme.com"
    assert row["Id"].startswith("003")
    assert len(row["Id"]) == 18
    assert row["Personalization_Engagement_Score__c"] == 0.25
    assert row["IsDeleted"] is False
    assert row["Personalization_Last_Activity__c"] == "2024-01-01T00:00:00.000+0000"


def test_int_and_currency_values_are_typed(store: SalesforceStore) -> None:
    [row] = store.query("SELECT NumberOfEmployees, AnnualRevenue FROM Account "
                        "WHERE Name = 'acme'").fetch(1)
    assert row == {"NumberOfEmployees": 50, "AnnualRevenue": 1000.0}
    assert isinstance(row["NumberOfEmployees"], int)


def test_keywords_fields_and_objects_are_case_insensitive(store: SalesforceStore) -> None:
    cursor = store.query("select lastname, EMAIL from contact where LASTNAME = 'alpha' "
                         "order by lastName asc limit 5")
    assert cursor.fields == ["LastName", "Email"]
    assert cursor.fetch(5) == [{"LastName": "Alpha", "Email": "ann@acme.com"}]


def test_parent_relationship_fields_are_nested(store: SalesforceStore) -> None:
    cursor = store.query("SELECT LastName, Account.Name, account.numberofemployees FROM Contact "
                         "ORDER BY LastName")
    assert cursor.fields == ["LastName", "Account.Name", "Account.NumberOfEmployees"]
    rows = {row["LastName"]: row for row in cursor.fetch(10)}
    assert rows["Alpha"]["Account"] == {"Name": "Acme", "NumberOfEmployees": 50}
    assert rows["Gamma"]["Account"] == {"Name": "Zoë GmbH", "NumberOfEmployees": 7}
    assert rows["Delta_100%"]["Account"] is None  # no parent


def test_campaign_member_campaign_relationship(tmp_path: Path) -> None:
    sf = SalesforceStore(tmp_path / "sf.db")
    [campaign] = sf.insert_raw("Campaign", [{"Name": "Spring Webinar 2026", "IsActive": True}])
    [contact] = sf.insert_raw("Contact", [{"LastName": "X"}])
    sf.insert_raw("CampaignMember", [{"CampaignId": campaign, "ContactId": contact}])
    rows = sf.query("SELECT CampaignId, Campaign.Name, Contact.LastName, Status, HasResponded "
                    "FROM CampaignMember WHERE Campaign.Name = 'spring webinar 2026'").fetch(5)
    assert rows == [{"CampaignId": campaign, "Campaign": {"Name": "Spring Webinar 2026"},
                     "Contact": {"LastName": "X"}, "Status": "Sent", "HasResponded": False}]


def test_relationship_fields_filter_and_sort(store: SalesforceStore) -> None:
    cursor = store.query("SELECT LastName FROM Contact WHERE Account.Name != null "
                         "ORDER BY Account.Name DESC, LastName ASC")
    assert [row["LastName"] for row in cursor.fetch(10)] == ["Gamma", "Alpha", "beta"]


def test_count_query(store: SalesforceStore) -> None:
    cursor = store.query("SELECT COUNT() FROM Contact WHERE Email LIKE '%acme.com'")
    assert (cursor.total_size, cursor.done, cursor.fetch(10)) == (2, True, [])
    assert store.query("SELECT count() FROM Contact").total_size == 4


# -- operators ------------------------------------------------------------------------------

@pytest.mark.parametrize(("where", "expected"), [
    ("Personalization_Engagement_Score__c = 0.75", ["beta"]),
    ("Personalization_Engagement_Score__c != 0.75", ["Alpha", "Delta_100%", "Gamma"]),
    ("Personalization_Engagement_Score__c <> 0.75", ["Alpha", "Delta_100%", "Gamma"]),
    ("Personalization_Engagement_Score__c < 0.75", ["Alpha"]),
    ("Personalization_Engagement_Score__c <= 0.75", ["Alpha", "beta"]),
    ("Personalization_Engagement_Score__c > 0.25", ["Delta_100%", "beta"]),
    ("Personalization_Engagement_Score__c >= 0.25", ["Alpha", "Delta_100%", "beta"]),
    ("Personalization_Engagement_Score__c > -1", ["Alpha", "Delta_100%", "beta"]),
    ("Personalization_Engagement_Score__c = 1", []),
    ("Personalization_Engagement_Score__c = null", ["Gamma"]),
    ("Personalization_Engagement_Score__c != NULL", ["Alpha", "Delta_100%", "beta"]),
    ("Email = null", ["Delta_100%"]),
    ("Email != null", ["Alpha", "Gamma", "beta"]),
    ("LeadSource IN ('Web', 'Other')", ["Alpha", "beta"]),
    ("LeadSource NOT IN ('Web')", ["Delta_100%", "Gamma", "beta"]),
    ("LeadSource IN ('Web', null)", ["Alpha", "Delta_100%", "Gamma"]),
    ("LeadSource NOT IN ('Web', null)", ["beta"]),
    ("LastName < 'b'", ["Alpha"]),
    ("LastName > 'DELTA'", ["Delta_100%", "Gamma"]),
    ("LastName >= 'delta_100%'", ["Delta_100%", "Gamma"]),
    ("FirstName = 'ann' AND LastName = 'ALPHA'", ["Alpha"]),
    ("FirstName = 'ann' OR LastName = 'beta' OR Email = 'zoë@x.com'", ["Alpha", "Gamma", "beta"]),
    ("(FirstName = 'ann' OR FirstName = 'bob') AND LeadSource = 'Other'", ["beta"]),
    ("FirstName = 'ann' OR (LastName = 'beta' AND LeadSource = 'Web')", ["Alpha"]),
    ("NOT FirstName = 'ann'", ["Delta_100%", "Gamma", "beta"]),
    ("NOT (FirstName = 'ann' OR FirstName = 'bob')", ["Delta_100%", "Gamma"]),
    ("NOT LeadSource IN ('Web')", ["Delta_100%", "Gamma", "beta"]),
    ("IsDeleted = false", ["Alpha", "Delta_100%", "Gamma", "beta"]),
    ("IsDeleted = TRUE", []),
])
def test_comparison_operators(store: SalesforceStore, where: str, expected: list[str]) -> None:
    assert last_names(store, where) == sorted(expected, key=str.casefold)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("'%acme.com'", ["Alpha", "beta"]),
    ("'a%'", ["Alpha"]),
    ("'_ob@%'", ["beta"]),
    ("'%ZOË%'", ["Gamma"]),
    ("'zo_@x.com'", ["Gamma"]),
])
def test_like_is_case_insensitive_with_wildcards(store: SalesforceStore, pattern: str,
                                                 expected: list[str]) -> None:
    assert last_names(store, f"Email LIKE {pattern}") == expected


def test_like_escaped_wildcards_match_literally(store: SalesforceStore) -> None:
    assert last_names(store, r"LastName LIKE 'delta\_100\%'") == ["Delta_100%"]
    assert last_names(store, r"LastName LIKE 'delta\_1\%'") == []
    assert last_names(store, r"LastName LIKE 'delta_100%'") == ["Delta_100%"]


def test_unicode_case_insensitive_equality_and_in(store: SalesforceStore) -> None:
    assert last_names(store, "Email = 'zoë@x.com'") == ["Gamma"]
    assert last_names(store, "Email IN ('ZOË@X.COM', 'bob@acme.com')") == ["beta", "Gamma"]
    assert last_names(store, "FirstName = 'ZOË'") == ["Gamma"]


def test_string_escapes(store: SalesforceStore) -> None:
    assert last_names(store, "Title = 'O\\'Brien \\\\ \\\"Chief\\\"\\n'") == ["Gamma"]
    assert last_names(store, "Title = 'O\\u0027Brien \\u005c \\u0022Chief\\u0022\\u000a'") == \
        ["Gamma"]
    assert last_names(store, "Title = 'O\\'Brien'") == []


@pytest.mark.parametrize("escape", ["\\r", "\\t", "\\b", "\\f"])
def test_control_character_escapes(tmp_path: Path, escape: str) -> None:
    sf = SalesforceStore(tmp_path / "sf.db")
    decoded = {"\\r": "\r", "\\t": "\t", "\\b": "\b", "\\f": "\f"}[escape]
    sf.insert_raw("Contact", [{"LastName": f"a{decoded}b"}, {"LastName": "ab"}])
    rows = sf.query(soql("SELECT LastName FROM Contact WHERE LastName =", f"'a{escape}b'")
                    ).fetch(5)
    assert rows == [{"LastName": f"a{decoded}b"}]


@pytest.mark.parametrize(("literal", "expected"), [
    ("2024-01-01T00:00:00Z", ["beta"]),
    ("2024-01-01T00:00:00.000Z", ["beta"]),
    ("2024-01-01T01:00:00+01:00", ["beta"]),  # the same instant as 00:00Z
    ("2023-12-31T23:00:00-01:00", ["beta"]),
    ("2023-12-31T23:59:58Z", ["Alpha", "beta", "Gamma"]),
])
def test_datetime_literals(store: SalesforceStore, literal: str, expected: list[str]) -> None:
    assert last_names(store, f"Personalization_Last_Activity__c > {literal}") == expected


def test_datetime_equality_across_offsets(store: SalesforceStore) -> None:
    assert last_names(store, "Personalization_Last_Activity__c = 2024-06-01T14:30:00+02:00") \
        == ["beta"]


def test_date_literals_on_date_fields(tmp_path: Path) -> None:
    sf = SalesforceStore(tmp_path / "sf.db")
    sf.insert_raw("Lead", [
        {"LastName": "Old", "Company": "C", "IsConverted": True, "ConvertedDate": "2024-01-31"},
        {"LastName": "New", "Company": "C", "ConvertedDate": "2024-02-01"},
    ])
    rows = sf.query("SELECT LastName, ConvertedDate, IsConverted FROM Lead "
                    "WHERE ConvertedDate <= 2024-01-31").fetch(5)
    assert rows == [{"LastName": "Old", "ConvertedDate": "2024-01-31", "IsConverted": True}]


def test_in_list_longer_than_parameter_batches(store: SalesforceStore) -> None:
    emails = ", ".join([f"'nobody{i}@example.com'" for i in range(1500)] + ["'BOB@acme.COM'"])
    assert last_names(store, f"Email IN ({emails})") == ["beta"]
    assert len(last_names(store, f"Email NOT IN ({emails})")) == 3


def test_id_literals_accept_15_and_any_case_18(store: SalesforceStore) -> None:
    [row] = store.query("SELECT Id FROM Contact WHERE LastName = 'Alpha'").fetch(1)
    record_id = row["Id"]
    for literal in (record_id, record_id[:15], record_id.lower(), record_id.upper()):
        assert last_names(store, f"Id = '{literal}'") == ["Alpha"]
    [account] = store.query("SELECT AccountId FROM Contact WHERE LastName = 'Alpha'").fetch(1)
    assert last_names(store, f"AccountId IN ('{account['AccountId'][:15]}')") == ["Alpha", "beta"]


# -- ordering, limits, deleted rows ---------------------------------------------------------

def test_order_by_directions_and_nulls(store: SalesforceStore) -> None:
    def order(clause: str) -> list[str]:
        cursor = store.query(soql("SELECT LastName FROM Contact ORDER BY", clause))
        return [row["LastName"] for row in cursor.fetch(10)]

    score = "Personalization_Engagement_Score__c"
    assert order(f"{score}") == ["Gamma", "Alpha", "beta", "Delta_100%"]  # nulls first
    assert order(f"{score} DESC") == ["Delta_100%", "beta", "Alpha", "Gamma"]  # nulls last
    assert order(f"{score} ASC NULLS LAST") == ["Alpha", "beta", "Delta_100%", "Gamma"]
    assert order(f"{score} DESC NULLS FIRST") == ["Gamma", "Delta_100%", "beta", "Alpha"]
    assert order("LastName") == ["Alpha", "beta", "Delta_100%", "Gamma"]  # case-insensitive
    assert order("AccountId DESC, LastName DESC") [:1] == ["Gamma"]
    assert order("LeadSource DESC NULLS LAST, FirstName") == ["Alpha", "beta", "Delta_100%",
                                                               "Gamma"]


def test_limit_and_offset(store: SalesforceStore) -> None:
    cursor = store.query("SELECT LastName FROM Contact ORDER BY LastName LIMIT 2 OFFSET 1")
    assert cursor.total_size == 2
    assert [row["LastName"] for row in cursor.fetch(10)] == ["beta", "Delta_100%"]
    assert store.query("SELECT Id FROM Contact LIMIT 0").total_size == 0
    assert store.query("SELECT COUNT() FROM Contact LIMIT 3").total_size == 3


def test_deleted_rows_only_with_include_deleted(store: SalesforceStore) -> None:
    assert last_names(store, "Email LIKE 'gone%'") == []
    assert last_names(store, "Email LIKE 'gone%'", include_deleted=True) == ["Gone"]
    cursor = store.query("SELECT LastName, IsDeleted FROM Contact WHERE IsDeleted = true",
                         include_deleted=True)
    assert cursor.fetch(5) == [{"LastName": "Gone", "IsDeleted": True}]


# -- cursors --------------------------------------------------------------------------------

def test_cursor_pages_through_all_rows_in_order(tmp_path: Path) -> None:
    sf = SalesforceStore(tmp_path / "sf.db")
    sf.insert_raw("Contact", ({"LastName": f"n{i:04d}"} for i in range(1234)))
    cursor = sf.query("SELECT LastName FROM Contact ORDER BY LastName DESC")
    assert cursor.total_size == 1234
    pages = []
    while not cursor.done:
        pages.append(cursor.fetch(500))
    assert [len(page) for page in pages] == [500, 500, 234]
    names = [row["LastName"] for page in pages for row in page]
    assert names == [f"n{i:04d}" for i in reversed(range(1234))]
    assert cursor.fetch(500) == []


def test_cursor_is_usable_from_other_threads(store: SalesforceStore) -> None:
    cursor = store.query("SELECT LastName FROM Contact ORDER BY LastName")
    first = cursor.fetch(2)
    rest: list[Any] = []
    worker = threading.Thread(target=lambda: rest.extend(cursor.fetch(10)))
    worker.start()
    worker.join()
    assert [r["LastName"] for r in first + rest] == ["Alpha", "beta", "Delta_100%", "Gamma"]
    assert cursor.done


def test_cursor_sees_rows_as_they_are_when_fetched(tmp_path: Path) -> None:
    sf = SalesforceStore(tmp_path / "sf.db")
    ids = sf.insert_raw("Contact", [{"LastName": "a"}, {"LastName": "b"}])
    cursor = sf.query("SELECT Id, Title FROM Contact ORDER BY LastName")
    cursor.fetch(1)
    sf.apply("update", "Contact", [{"Id": ids[1], "Title": "changed"}])
    assert cursor.fetch(1) == [{"Id": ids[1], "Title": "changed"}]


# -- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("soql", "detail"), [
    ("SELECT Id FORM Contact", "unexpected token: 'FORM'"),
    ("SELECT Id FROM Contact WHERE", "unexpected token: '<EOF>'"),
    ("SELECT FROM Contact", "unexpected token: 'FROM'"),
    ("SELECT Id, FROM Contact", "unexpected token: 'FROM'"),
    ("SELECT Id FROM Contact WHERE Email = 'a' AND LastName = 'b' OR Title = 'c'",
     "unexpected token: 'OR'"),
    ("SELECT Id FROM Contact WHERE Email = \"a\"", "unexpected token: '\"'"),
    ("SELECT Id FROM Contact WHERE (Email = 'a'", "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Contact LIMIT -1", "unexpected token: '-1'"),
    ("SELECT Id FROM Contact LIMIT 1.5", "unexpected token: '1.5'"),
    ("SELECT Id FROM Contact ORDER BY", "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Contact WHERE Email = 'abc", "mismatched character '<EOF>' expecting '''"),
    ("SELECT Id FROM Contact WHERE CreatedDate > 2024-13-01T00:00:00Z",
     "unexpected token: '2024-13-01T00:00:00Z'"),
    ("SELECT Id FROM Contact WHERE CreatedDate > 2024-01-01T00:00:00",
     "unexpected token: '2024-01-01T00:00:00'"),
    ("SELECT Id FROM Contact WHERE Email = 'a' extra", "unexpected token: 'extra'"),
])
def test_malformed_query(store: SalesforceStore, soql: str, detail: str) -> None:
    error = refused(store, soql)
    assert (error.code, error.detail) == ("MALFORMED_QUERY", detail)
    assert error.message.endswith(detail)
    assert "ERROR at Row:1:Column:" in error.message


def test_error_message_points_at_the_token(store: SalesforceStore) -> None:
    error = refused(store, "SELECT Id FORM Contact")
    assert error.message == ("SELECT Id FORM Contact\n          ^\nERROR at Row:1:Column:11\n"
                             "unexpected token: 'FORM'")


def test_illegal_escape_sequence(store: SalesforceStore) -> None:
    error = refused(store, r"SELECT Id FROM Contact WHERE Email = 'a\qb'")
    assert error.code == "MALFORMED_QUERY"
    assert "Illegal character sequence '\\q' in string literal." in error.detail


def test_statement_and_literal_length_limits(store: SalesforceStore) -> None:
    long_list = ", ".join(["'x@example.com'"] * 7000)
    error = refused(store, soql("SELECT Id FROM Contact WHERE Email IN (", long_list, ")"))
    assert error.code == "MALFORMED_QUERY"
    assert "100,000 characters" in error.message
    error = refused(store, "SELECT Id FROM Contact WHERE Email = '" + "a" * 4001 + "'")
    assert error.code == "MALFORMED_QUERY"
    assert "String literal is too long" in error.detail
    assert last_names(store, "Title = '" + "a" * 4000 + "'") == []


def test_offset_above_salesforce_maximum(store: SalesforceStore) -> None:
    error = refused(store, "SELECT Id FROM Contact OFFSET 2001")
    assert (error.code, error.detail) == ("NUMBER_OUTSIDE_VALID_RANGE",
                                          "Maximum SOQL offset allowed is 2000")


@pytest.mark.parametrize(("soql", "detail"), [
    ("SELECT Foo FROM Contact",
     "No such column 'Foo' on entity 'Contact'. If you are attempting to use a custom field, "
     "be sure to append the '__c' after the custom field name. Please reference your WSDL or "
     "the describe call for the appropriate names."),
    ("SELECT Id FROM Contact WHERE Foo__c = 1", "No such column 'Foo__c' on entity 'Contact'."),
    ("SELECT Id FROM Contact ORDER BY Bar", "No such column 'Bar' on entity 'Contact'."),
    ("SELECT Account.Foo FROM Contact", "No such column 'Foo' on entity 'Account'."),
    ("SELECT Owner.Name FROM Contact", "Didn't understand relationship 'Owner' in field path."),
    ("SELECT Account.Owner.Name FROM Contact", "Didn't understand relationship 'Owner'"),
    ("SELECT Internal_Notes__c FROM Contact",
     "No such column 'Internal_Notes__c' on entity 'Contact'."),
    ("SELECT Id FROM Contact WHERE NumberOfEmployees = 1",
     "No such column 'NumberOfEmployees' on entity 'Contact'."),
    ("SELECT Id FROM Account WHERE NumberOfEmployees = '5'",
     "value of filter criterion for field 'NumberOfEmployees' must be of type integer and "
     "should not be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE NumberOfEmployees = 5.5", "must be of type integer"),
    ("SELECT Id FROM Contact WHERE Email = 5",
     "value of filter criterion for field 'Email' must be of type string and should be "
     "enclosed in quotes"),
    ("SELECT Id FROM Contact WHERE IsDeleted = 'true'", "must be of type boolean"),
    ("SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-01T00:00:00Z'",
     "must be of type dateTime and should not be enclosed in quotes"),
    ("SELECT Id FROM Contact WHERE SystemModstamp > 2024-01-01", "must be of type dateTime"),
    ("SELECT Id FROM Lead WHERE ConvertedDate = 2024-01-01T00:00:00Z", "must be of type date"),
    ("SELECT Id FROM Contact WHERE Personalization_Engagement_Score__c > '1'",
     "must be of type double"),
    ("SELECT Id FROM Contact WHERE AccountId = 5", "must be of type id"),
    ("SELECT Id FROM Contact WHERE AccountId LIKE '001%'", "LIKE applies to text fields only"),
    ("SELECT Id FROM Contact WHERE Email > null", "can only be compared with = or !="),
])
def test_invalid_field(store: SalesforceStore, soql: str, detail: str) -> None:
    error = refused(store, soql)
    assert error.code == "INVALID_FIELD"
    assert detail in error.detail


def test_duplicate_field_selected(store: SalesforceStore) -> None:
    error = refused(store, "SELECT Id, Email, email FROM Contact")
    assert (error.code, error.detail) == ("MALFORMED_QUERY", "duplicate field selected: email")


def test_unknown_object_is_invalid_type(store: SalesforceStore) -> None:
    error = refused(store, "SELECT Id FROM Foo")
    assert error.code == "INVALID_TYPE"
    assert error.detail.startswith("sObject type 'Foo' is not supported.")


def test_malformed_id_literal(store: SalesforceStore) -> None:
    error = refused(store, "SELECT Id FROM Contact WHERE Id = 'abc'")
    assert (error.code, error.detail) == ("INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc")


def test_syntax_errors_come_before_unknown_objects(store: SalesforceStore) -> None:
    assert refused(store, "SELECT Id FROM Foo WHERE").code == "MALFORMED_QUERY"


def test_values_are_bound_never_spliced_into_sql(store: SalesforceStore) -> None:
    hostile = "x' OR '1'='1"
    escaped = hostile.replace("'", "\\'")
    assert last_names(store, f"Email = '{escaped}'") == []
    plan = compile_query(soql("SELECT Id FROM Contact WHERE Email =", f"'{escaped}'"),
                         Catalog().visible)
    assert hostile not in plan.where_sql
    assert fold(hostile) in plan.params


def test_email_in_list_uses_the_folded_email_index(store: SalesforceStore) -> None:
    emails = ", ".join(f"'user{i}@example.com'" for i in range(1000))
    plan = compile_query(soql("SELECT Id FROM Contact WHERE Email IN (", emails, ")"),
                         Catalog().visible)
    conn = sqlite3.connect(store.path)  # the plan SQLite chose, not a timing
    conn.create_function("sf_fold", 1, fold, deterministic=True)
    statement = " ".join(["EXPLAIN QUERY PLAN SELECT t.rowid FROM", plan.from_sql, "WHERE",
                          plan.where_sql])
    steps = conn.execute(statement, plan.params).fetchall()
    conn.close()
    assert any("Contact_Email__fold_idx" in step[-1] for step in steps), steps
