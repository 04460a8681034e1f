"""Deterministic demo data for both sandboxes: overlapping people and companies.

Why the data looks the way it does: it reproduces the matching problems a CRM sync meets.
About 60 % of Personalization users are CRM Contacts (some with e-mail case different from
Personalization's), some are only Leads, some are both a Contact and a Lead, some Leads
were converted into their Contact, and about 25 % have no CRM record at all. Companies
appear in the CRM under the same name, under a variant that normalises to it ("Acme Inc."
vs "ACME, Incorporated"), under a near miss (a typo), twice (an ambiguous pair), or not at
all. A few e-mails hold apostrophes or non-ASCII letters. Campaigns (among them "Spring
Webinar 2026", which feeds the `seg-webinar` segment) have Contact and Lead members.

How it stays fast and flat: users are generated in chunks; each chunk's companies are
inserted into the CRM first (so their Ids are known), then its Contacts, Leads and
CampaignMembers, then its Personalization rows. Users of one company are consecutive, so
no Id map outlives its chunk. Every random draw comes from one `random.Random(seed)` in a
fixed order; Faker (seeded) only fills name pools; timestamps derive from a fixed reference
date, never from today. The same seed gives the same data.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faker import Faker

from emulators.personalization.store import DB_FILE, PersonalizationStore
from emulators.salesforce.store import SalesforceStore

REFERENCE_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z
DAY_MS = 86_400_000
CHUNK_USERS = 20_000

SEGMENTS = (
    ("seg-vip", "VIP"),
    ("seg-cart-abandoners", "Cart Abandoners"),
    ("seg-newsletter", "Newsletter"),
    ("seg-webinar", "Webinar Attendees"),
)
SEGMENT_SHARES = (("seg-vip", 0.10), ("seg-cart-abandoners", 0.15), ("seg-newsletter", 0.40))
WEBINAR_CAMPAIGN = "Spring Webinar 2026"
CAMPAIGNS = (
    {"Name": WEBINAR_CAMPAIGN, "Type": "Webinar", "Status": "In Progress", "IsActive": True},
    {"Name": "Autumn Product Launch 2025", "Type": "Event", "Status": "Completed",
     "IsActive": False},
    {"Name": "March Newsletter 2026", "Type": "Email", "Status": "Completed", "IsActive": True},
)
CAMPAIGN_SHARES = (0.12, 0.05, 0.08)
MEMBER_STATUSES = (("Sent", False), ("Registered", False), ("Attended", True),
                   ("Responded", True))

# Per user: cumulative shares of the CRM categories.
USER_CATEGORIES = (
    ("contact_only", 0.50), ("contact_and_lead", 0.55), ("converted_lead", 0.60),
    ("lead_only", 0.75), ("no_crm_match", 1.0),
)
# Per company: cumulative shares of how it appears in the CRM.
ACCOUNT_CATEGORIES = (
    ("exact_name", 0.35), ("name_variant", 0.65), ("fuzzy_name", 0.75), ("ambiguous", 0.80),
    ("no_crm_match", 1.0),
)
CONSUMER_SHARE = 0.05  # users without a company
EMAIL_CASE_SHARE = 0.12  # CRM copies whose e-mail differs in case
CRM_ONLY_CONTACT_SHARE = 0.05  # CRM contacts with no Personalization user
SPECIAL_EMAIL_EVERY = 67  # users n with n % 67 == 7 get apostrophes / unicode letters

INDUSTRIES = (
    "Agriculture", "Apparel", "Banking", "Chemicals", "Communications", "Construction",
    "Consulting", "Education", "Electronics", "Energy", "Engineering", "Entertainment",
    "Finance", "Healthcare", "Hospitality", "Insurance", "Manufacturing", "Media", "Retail",
    "Technology", "Telecommunications", "Transportation", "Utilities",
)
ACCOUNT_TYPES = ("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
OPEN_LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Not Converted")
RATINGS = ("Hot", "Warm", "Cold")
TITLES = ("CEO", "CTO", "VP Marketing", "Marketing Manager", "Sales Director", "Data Analyst",
          "Engineer", "Product Manager", "Operations Lead", "Buyer")
DEPARTMENTS = ("Marketing", "Sales", "Engineering", "Finance", "Operations", "IT")
PLANS = (("gold", 0.15), ("silver", 0.50), ("bronze", 1.0))
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
GEO = (
    ("US", "CA", "San Francisco"), ("US", "NY", "New York"), ("GB", "ENG", "London"),
    ("DE", "BE", "Berlin"), ("FR", "IDF", "Paris"), ("JP", "13", "Tokyo"),
    ("AU", "NSW", "Sydney"), ("CA", "ON", "Toronto"), ("BR", "SP", "São Paulo"),
    ("IN", "MH", "Mumbai"),
)
GEO_JSON = tuple(json.dumps({"country": country, "region": region, "city": city},
                            ensure_ascii=False) for country, region, city in GEO)
CONSUMER_DOMAINS = ("example.net", "example.org", "mail.example")
SPECIAL_PEOPLE = (
    ("Seán", "O'Brien"), ("Zoë", "Müller"), ("José", "Núñez"), ("Chloé", "D'Arcy"),
    ("Björn", "Åström"), ("Siobhán", "O'Neill"), ("Łukasz", "Żółć"), ("Renée", "L'Écuyer"),
)

COMPANY_WORDS = (
    "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Hooli", "Vandelay",
    "Soylent", "Cyberdyne", "Tyrell", "Aperture", "Northwind", "Contoso", "Fabrikam",
    "Bluesky", "Silverlake", "Redrock", "Goldgate", "Ironpeak", "Granite", "Summit",
    "Pioneer", "Harbor", "Beacon", "Evergreen", "Cascade", "Maple", "Cedar", "Aurora",
    "Zenith", "Nimbus", "Orion", "Vertex", "Quantum", "Atlas", "Polaris", "Falcon",
    "Meridian", "Horizon", "Keystone", "Lighthouse", "Monarch", "Nova", "Oakridge",
    "Pinnacle", "Riverside", "Sterling", "Trident", "Willow",
)
COMPANY_KINDS = (
    "Systems", "Labs", "Dynamics", "Solutions", "Industries", "Logistics", "Foods", "Media",
    "Health", "Energy", "Analytics", "Networks", "Robotics", "Outfitters", "Partners",
    "Holdings", "Manufacturing", "Software", "Ventures", "Capital", "Telecom", "Pharma",
    "Motors", "Studios", "Consulting", "Insurance", "Travel", "Farms", "Apparel", "Bank",
)
# Legal form as written in Personalization, and ways the CRM writes the same form.
LEGAL_FORMS = (
    ("Inc.", ("Inc", "Incorporated", ", Inc.", ", Incorporated")),
    ("Corp.", ("Corporation", "Corp", ", Corp.")),
    ("LLC", ("L.L.C.", ", LLC")),
    ("Ltd.", ("Limited", "Ltd")),
    ("Co.", ("Company", "Co")),
)
# The first generated companies cover every category, so even small data sets have
# ambiguous pairs, near misses and unmatched companies.
EARLY_CATEGORIES = ("fuzzy_name", "ambiguous", "no_crm_match", "exact_name", "ambiguous",
                    "fuzzy_name")
FIXED_COMPANIES = (
    # name in Personalization, CRM names, id slug, domain
    ("Acme Inc.", ("ACME, Incorporated",), "acme-inc", "acme.com"),
    ("Example Corp.", ("Example Corporation",), "example-corp", "example.com"),
)


@dataclass
class Company:
    slug: str
    name: str
    domain: str
    industry: str
    category: str
    crm_names: tuple[str, ...]
    remaining: int
    crm_ids: list[str] = field(default_factory=list)


@dataclass
class Person:
    number: int
    first: str
    last: str
    email: str
    category: str
    company: Company | None
    crm_email: str
    draws: dict[str, Any]


def _pick(rng: random.Random, cumulative: tuple[tuple[str, float], ...]) -> str:
    roll = rng.random()
    return next(name for name, bound in cumulative if roll < bound)


def _choice(rng: random.Random, items: tuple[Any, ...] | list[Any]) -> Any:
    """rng.choice without its rejection sampling: a third of the cost, same idea."""
    return items[int(rng.random() * len(items))]


def _between(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high], cheaper than rng.randint for millions of draws."""
    return low + int(rng.random() * (high - low + 1))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _ascii_word(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _variant(rng: random.Random, core: str, legal: str, variants: tuple[str, ...]) -> str:
    """A different spelling that normalises to the same company name.

    Every style differs from `f"{core} {legal}"`: the case changes, or the legal form is
    spelled another way.
    """
    style = rng.randrange(4)
    if style == 0:
        return f"{core} {legal}".upper()
    if style == 1:
        return f"{core.lower()} {legal.lower()}"
    form = rng.choice(variants)
    return f"{core}{form}" if form.startswith(",") else f"{core} {form}"


def _typo(rng: random.Random, core: str) -> str:
    """A near miss: one letter doubled, dropped or two swapped in the longest word."""
    words = core.split(" ")
    index = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[index]
    at = rng.randrange(1, len(word) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        word = word[:at] + word[at] + word[at:]
    elif kind == 1:
        word = word[:at] + word[at + 1:]
    elif word[at] != word[at + 1]:
        word = word[:at] + word[at + 1] + word[at] + word[at + 2:]
    else:  # swapping equal letters changes nothing: drop one instead
        word = word[:at] + word[at + 1:]
    words[index] = word
    return " ".join(words)


class _Generator:
    def __init__(self, data_dir: Path, users: int, seed: int) -> None:
        self.total = users
        self.rng = random.Random(seed)
        fake = Faker("en_US")
        fake.seed_instance(seed)
        self.first_names = [fake.first_name() for _ in range(400)]
        self.last_names = [fake.last_name() for _ in range(400)]
        self.pzn = PersonalizationStore(data_dir / "personalization" / DB_FILE)
        self.crm = SalesforceStore(data_dir / "salesforce" / "salesforce.db")
        self.counts: Counter[str] = Counter()
        self.company_index = 0
        self.company: Company | None = None
        self.new_companies: list[Company] = []
        self.campaign_ids: list[str] = []
        words, kinds = len(COMPANY_WORDS), len(COMPANY_KINDS)
        self.name_space = words * kinds
        self.name_step = next(step for step in range(self.rng.randrange(7, 97), 10**6)
                              if _coprime(step, self.name_space))
        self.name_offset = self.rng.randrange(self.name_space)

    # -- companies ---------------------------------------------------------------------

    def _next_company(self) -> Company:
        index = self.company_index
        self.company_index += 1
        size = self.rng.randint(1, 15)
        industry = self.rng.choice(INDUSTRIES)
        if index < len(FIXED_COMPANIES):
            name, crm_names, slug, domain = FIXED_COMPANIES[index]
            return Company(slug, name, domain, industry, "name_variant", crm_names, size)
        position = (index * self.name_step + self.name_offset) % self.name_space
        core = (f"{COMPANY_WORDS[position // len(COMPANY_KINDS)]} "
                f"{COMPANY_KINDS[position % len(COMPANY_KINDS)]}")
        cycle = index // self.name_space
        if cycle:
            core = f"{core} {cycle + 1}"
        legal, variants = self.rng.choice(LEGAL_FORMS)
        name = f"{core} {legal}"
        category = _pick(self.rng, ACCOUNT_CATEGORIES)
        if index - len(FIXED_COMPANIES) < len(EARLY_CATEGORIES):
            category = EARLY_CATEGORIES[index - len(FIXED_COMPANIES)]
        if category == "exact_name":
            crm_names: tuple[str, ...] = (name,)
        elif category == "name_variant":
            crm_names = (_variant(self.rng, core, legal, variants),)
        elif category == "fuzzy_name":
            crm_names = (f"{_typo(self.rng, core)} {legal}",)
        elif category == "ambiguous":
            crm_names = (name, _variant(self.rng, core, legal, variants))
        else:
            crm_names = ()
        return Company(_slug(name), name, f"{_slug(core)}.com", industry, category, crm_names,
                       size)

    def _company_for_next_user(self) -> Company | None:
        if self.rng.random() < CONSUMER_SHARE:
            return None
        if self.company is None or self.company.remaining == 0:
            self.company = self._next_company()
            self.new_companies.append(self.company)
        self.company.remaining -= 1
        return self.company

    # -- people ------------------------------------------------------------------------

    def _person(self, number: int) -> Person:
        rng = self.rng
        company = self._company_for_next_user()
        category = _pick(rng, USER_CATEGORIES)
        if number % SPECIAL_EMAIL_EVERY == 7:
            first, last = SPECIAL_PEOPLE[(number // SPECIAL_EMAIL_EVERY) % len(SPECIAL_PEOPLE)]
            local = f"{first.lower()}.{last.lower().replace(' ', '')}{number}"
            category = "contact_only" if number % 2 else "lead_only"
            self.counts["emails_special_characters"] += 1
        else:
            first, last = _choice(rng, self.first_names), _choice(rng, self.last_names)
            local = f"{_ascii_word(first)}.{_ascii_word(last)}{number}"
        domain = company.domain if company else _choice(rng, CONSUMER_DOMAINS)
        email = f"{local}@{domain}"
        crm_email = email
        if rng.random() < EMAIL_CASE_SHARE:
            capitalised = f"{local[:1].upper()}{local[1:]}@{domain[:1].upper()}{domain[1:]}"
            if rng.random() < 0.5:
                crm_email = capitalised
            else:
                email = capitalised
        first_ms = REFERENCE_MS - _between(rng, 30, 730) * DAY_MS - _between(rng, 0, DAY_MS)
        last_ms = _between(rng, first_ms, REFERENCE_MS)
        draws = {
            "score": round(rng.random() ** 2, 4), "first": first_ms, "last": last_ms,
            "segments": [(segment, _between(rng, first_ms, last_ms))
                         for segment, share in SEGMENT_SHARES if rng.random() < share],
            "plan": _pick(rng, PLANS), "visits": int(rng.expovariate(1 / 6)),
            "geo": _choice(rng, GEO_JSON), "title": _choice(rng, TITLES),
            "department": _choice(rng, DEPARTMENTS), "source": _choice(rng, LEAD_SOURCES),
            "phone": f"+1-555-{_between(rng, 0, 9999):04d}", "rating": _choice(rng, RATINGS),
            "status": _choice(rng, OPEN_LEAD_STATUSES), "legacy": round(rng.random() * 100, 2),
            "campaigns": [(index, _choice(rng, MEMBER_STATUSES))
                          for index, share in enumerate(CAMPAIGN_SHARES) if rng.random() < share],
        }
        self.counts[f"users_{category}"] += 1
        if company is None:
            self.counts["users_without_account"] += 1
        return Person(number, first, last, email, category, company, crm_email, draws)

    # -- writing -----------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        self.pzn.reset(keep_feed_results=True)
        self.crm.reset()
        self.pzn.load(segments=SEGMENTS)
        self.pzn.define_attributes("user", {"industry": "string", "plan": "string",
                                            "visits30d": "number"})
        self.pzn.define_attributes("account", {"industry": "string", "region": "string"})
        self.campaign_ids = self.crm.insert_raw("Campaign", [dict(c) for c in CAMPAIGNS])
        number = 0
        with self.pzn.bulk_load():
            while number < self.total:
                self.new_companies = []
                people = [self._person(n) for n in
                          range(number + 1, min(number + CHUNK_USERS, self.total) + 1)]
                number += len(people)
                self._write_chunk(people)
        return self._summary()

    def _write_chunk(self, people: list[Person]) -> None:
        self._write_crm_accounts()
        contacts = self._write_contacts(people)
        leads = self._write_leads(people, contacts)
        self._write_campaign_members(people, contacts, leads)
        self._write_personalization(people)

    def _write_crm_accounts(self) -> None:
        records, owners = [], []
        for company in self.new_companies:
            self.counts[f"accounts_{company.category}"] += 1
            for crm_name in company.crm_names:
                records.append({
                    "Name": crm_name, "Website": f"https://www.{company.domain}",
                    "Industry": company.industry, "Type": self.rng.choice(ACCOUNT_TYPES),
                    "AnnualRevenue": self.rng.randrange(1, 500) * 100_000,
                    "NumberOfEmployees": self.rng.randrange(5, 5000),
                })
                owners.append(company)
        for company, crm_id in zip(owners, self.crm.insert_raw("Account", records),
                                   strict=True):
            company.crm_ids.append(crm_id)

    def _contact(self, person: Person, email: str) -> dict[str, Any]:
        draws = person.draws
        company = person.company
        record = {
            "FirstName": person.first, "LastName": person.last, "Email": email,
            "Phone": draws["phone"], "Title": draws["title"],
            "Department": draws["department"], "LeadSource": draws["source"],
            "AccountId": company.crm_ids[0] if company and company.crm_ids else None,
        }
        if person.number % 10 == 0:
            record["Internal_Notes__c"] = "Met at a trade fair; prefers e-mail."
            record["Legacy_Score__c"] = draws["legacy"]
        return record

    def _crm_only_contact(self, person: Person) -> dict[str, Any]:
        """A colleague of `person` known to the CRM only."""
        first, last = self.rng.choice(self.first_names), self.rng.choice(self.last_names)
        company = person.company
        domain = company.domain if company else "example.net"
        local = f"{_ascii_word(first)}.{_ascii_word(last)}.crm{person.number}"
        return {"FirstName": first, "LastName": last, "Email": f"{local}@{domain}",
                "AccountId": company.crm_ids[0] if company and company.crm_ids else None,
                "LeadSource": "Other"}

    def _write_contacts(self, people: list[Person]) -> dict[int, str]:
        """Contact Ids by user number (CRM-only contacts are written but not returned)."""
        records, numbers = [], []
        for person in people:
            if person.category in ("contact_only", "contact_and_lead", "converted_lead"):
                records.append(self._contact(person, person.crm_email))
                numbers.append(person.number)
                if person.crm_email != person.email:
                    self.counts["contacts_email_case_differs"] += 1
            if self.rng.random() < CRM_ONLY_CONTACT_SHARE:
                records.append(self._crm_only_contact(person))
                numbers.append(-person.number)
                self.counts["contacts_crm_only"] += 1
        ids = self.crm.insert_raw("Contact", records)
        return {number: crm_id for number, crm_id in zip(numbers, ids, strict=True)
                if number > 0}

    def _write_leads(self, people: list[Person], contacts: dict[int, str]) -> dict[int, str]:
        records, numbers = [], []
        for person in people:
            if person.category not in ("contact_and_lead", "converted_lead", "lead_only"):
                continue
            company = person.company
            draws = person.draws
            record: dict[str, Any] = {
                "FirstName": person.first, "LastName": person.last,
                "Company": (company.crm_names or (company.name,))[0] if company
                else "Self-employed",
                "Email": person.crm_email, "Title": draws["title"],
                "Status": draws["status"], "LeadSource": draws["source"],
                "Industry": company.industry if company else None, "Rating": draws["rating"],
            }
            if person.category == "converted_lead":
                record.update(
                    IsConverted=True, Status="Closed - Converted",
                    ConvertedContactId=contacts[person.number],
                    ConvertedAccountId=company.crm_ids[0] if company and company.crm_ids
                    else None,
                    ConvertedDate=_date(person.draws["last"]))
                self.counts["leads_converted"] += 1
            records.append(record)
            numbers.append(person.number)
        ids = self.crm.insert_raw("Lead", records)
        return dict(zip(numbers, ids, strict=True))

    def _write_campaign_members(self, people: list[Person], contacts: dict[int, str],
                                leads: dict[int, str]) -> None:
        records = []
        for person in people:
            contact_id, lead_id = contacts.get(person.number), leads.get(person.number)
            if person.category == "converted_lead":
                lead_id = None  # a converted lead's memberships moved to its contact
            member = {"ContactId": contact_id} if contact_id else (
                {"LeadId": lead_id} if lead_id else None)
            if member is None:
                continue
            for index, (status, responded) in person.draws["campaigns"]:
                records.append({"CampaignId": self.campaign_ids[index], **member,
                                "Status": status, "HasResponded": responded})
        self.crm.insert_raw("CampaignMember", records)

    def _write_personalization(self, people: list[Person]) -> None:
        users, memberships = [], []
        for person in people:
            draws = person.draws
            company = person.company
            attributes = {"plan": draws["plan"], "visits30d": draws["visits"]}
            if company is not None:
                attributes["industry"] = company.industry
            user_id = f"u-{person.number:06d}"
            users.append({
                "id": user_id, "email": person.email,
                "display_name": f"{person.first} {person.last}",
                "account_id": company.slug if company else None,
                "account_name": company.name if company else None,
                "engagement_score": draws["score"], "first_activity": draws["first"],
                "last_activity": draws["last"],
                "attributes": json.dumps(
                    {name: [value, draws["last"]] for name, value in sorted(attributes.items())},
                    separators=(",", ":")),
                "geo": draws["geo"],
            })
            memberships.extend((user_id, segment, joined) for segment, joined in draws["segments"])
        accounts = [{
            "id": company.slug, "name": company.name, "domain": company.domain,
            "engagement_score": round(self.rng.random(), 4),
            "last_activity": REFERENCE_MS - self.rng.randrange(90) * DAY_MS,
            "attributes": json.dumps({"industry": [company.industry, REFERENCE_MS],
                                      "region": [self.rng.choice(REGIONS), REFERENCE_MS]}),
        } for company in self.new_companies]
        self.pzn.load(users=users, accounts=accounts, memberships=memberships)

    def _summary(self) -> dict[str, int]:
        counts = dict(sorted(self.counts.items()))
        for name in (*(f"users_{n}" for n, _ in USER_CATEGORIES),
                     *(f"accounts_{n}" for n, _ in ACCOUNT_CATEGORIES),
                     "contacts_email_case_differs", "contacts_crm_only", "leads_converted",
                     "emails_special_characters", "users_without_account"):
            counts.setdefault(name, 0)
        counts.update(self.pzn.counts())
        counts.pop("feed_files", None)
        crm = self.crm.counts()
        for sobject in ("Account", "Contact", "Lead", "Campaign", "CampaignMember"):
            counts[sobject] = crm.get(sobject, 0)
        return counts


def _coprime(a: int, b: int) -> bool:
    while b:
        a, b = b, a % b
    return a == 1


def _date(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).date().isoformat()


def generate(data_dir: Path, *, users: int, seed: int) -> dict[str, int]:
    """Replace the data of both sandboxes; counts per object and per category."""
    if users < 0:
        raise ValueError(f"users must be zero or more, got {users}")
    return _Generator(data_dir, users, seed).run()
