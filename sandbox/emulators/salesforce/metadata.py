"""Metadata deploys: `sf project deploy start --manifest package.xml`, emulated for the sandbox.

A source-format package (sfdx-project.json, a package.xml manifest, CustomField and
PermissionSet files) is checked the way a deploy checks it — structure against the
Metadata API WSDL (`metadata_schema`), each component's rules, then against the org — and
applied only if nothing failed (deploys are all-or-nothing). Applying creates the custom
fields, hidden from the integration user as a new field is in Salesforce, and, when the
permission set is assigned to the integration user, raises its field-level security to
what the set grants (permissions only ever add up). Object permissions are checked but
change nothing: the sandbox lets the integration user read and edit every object.

`POST /__admin/metadata/deploy` takes `{"path": folder-or-zip, "assign": true,
"check_only": false}` or a zip body (`Content-Type: application/zip`, same options as
query parameters) and answers with a Metadata API DeployResult (400 when it failed).
"""

from __future__ import annotations

import io
import itertools
import json
import re
import sqlite3
import threading
import zipfile
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from flask import Blueprint, Response, jsonify, request

from emulators.salesforce.catalog import SYSTEM_FIELDS, Catalog, FieldDef
from emulators.salesforce.ids import make_id
from emulators.salesforce.metadata_schema import (
    Element,
    Issue,
    XmlFileError,
    boolean,
    parse,
    validate,
)
from emulators.salesforce.state import current
from emulators.salesforce.versions import parse_version

SUPPORTED_TYPES = ("CustomField", "PermissionSet")
# Metadata API field type -> the describe type the sandbox stores.
FIELD_TYPES: dict[str, str] = {
    "Text": "string", "TextArea": "textarea", "LongTextArea": "textarea", "Email": "email",
    "Url": "url", "Phone": "phone", "Picklist": "picklist", "Number": "double",
    "Currency": "currency", "Percent": "percent", "Checkbox": "boolean", "Date": "date",
    "DateTime": "datetime",
}
# CustomField elements the sandbox honours or may ignore; any other is refused by name.
FIELD_ELEMENTS = frozenset({
    "fullName", "businessOwnerGroup", "businessOwnerUser", "businessStatus", "caseSensitive",
    "complianceGroup", "defaultValue", "deprecated", "description", "externalId",
    "fieldManageability", "inlineHelpText", "label", "length", "precision", "required",
    "scale", "securityClassification", "trackFeedHistory", "trackHistory", "trackTrending",
    "type", "unique", "valueSet", "visibleLines",
})
# Which sizing elements a type takes; the others are refused ("Can not specify ...").
TYPE_ELEMENTS: dict[str, frozenset[str]] = {
    "Text": frozenset({"length"}), "LongTextArea": frozenset({"length", "visibleLines"}),
    "Number": frozenset({"precision", "scale"}), "Currency": frozenset({"precision", "scale"}),
    "Percent": frozenset({"precision", "scale"}), "Picklist": frozenset({"valueSet"}),
}
REQUIRED_ELEMENTS: dict[str, tuple[str, ...]] = {
    "Text": ("length",), "LongTextArea": ("length", "visibleLines"),
    "Number": ("precision", "scale"), "Currency": ("precision", "scale"),
    "Percent": ("precision", "scale"), "Picklist": ("valueSet",), "Checkbox": ("defaultValue",),
}
LENGTHS = {"Text": (1, 255), "LongTextArea": (256, 131_072)}
EXTERNAL_ID_TYPES = frozenset({"Text", "Number", "Email"})
PERMISSION_SET_ELEMENTS = frozenset({"fullName", "description", "fieldPermissions",
                                     "hasActivationRequired", "label", "objectPermissions"})
OBJECT_DEPENDENCIES = (("allowCreate", "allowRead", "Create", "Read"),
                       ("allowEdit", "allowRead", "Edit", "Read"),
                       ("allowDelete", "allowEdit", "Delete", "Edit"),
                       ("viewAllRecords", "allowRead", "View All", "Read"),
                       ("modifyAllRecords", "allowDelete", "Modify All", "Delete"),
                       ("modifyAllRecords", "viewAllRecords", "Modify All", "View All"))
MAX_FILES = 10_000
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TOTAL_BYTES = 50 * 1024 * 1024
_API_NAME = re.compile(r"^[A-Za-z](?!.*__)[A-Za-z0-9_]{0,78}[A-Za-z0-9]$|^[A-Za-z]$")
_FIELD_FILE = re.compile(r"(?:^|/)objects/([^/]+)/fields/([^/]+)\.field-meta\.xml$")
_PERMSET_FILE = re.compile(r"(?:^|/)permissionsets/([^/]+)\.permissionset-meta\.xml$")
_DEPLOY_IDS = itertools.count(1)
Fail = Callable[..., None]  # (problem, element to point at or None for the file's root)
_DEPLOY_LOCK = threading.Lock()


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One componentFailure of a DeployResult."""

    component_type: str
    full_name: str
    file_name: str
    problem: str
    line: int = 0
    column: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"componentType": self.component_type, "fullName": self.full_name,
                "fileName": self.file_name, "problem": self.problem, "problemType": "Error",
                "lineNumber": self.line, "columnNumber": self.column, "success": False,
                "created": False, "changed": False, "deleted": False}


class DeployFailed(ValueError):
    """Nothing was deployed; `result()` is the Failed DeployResult listing every failure."""

    def __init__(self, failures: list[Failure], total: int = 0) -> None:
        self.failures = failures
        self.total = total
        super().__init__("; ".join(
            f"{f.file_name}:{f.line}:{f.column}: {f.problem}" for f in failures))

    def result(self) -> dict[str, Any]:
        return _result(False, [], self.failures, self.total, check_only=False)


def _result(success: bool, successes: list[dict[str, Any]], failures: list[Failure],
            total: int, *, check_only: bool, assigned: list[dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    return {
        "id": make_id("0Af", next(_DEPLOY_IDS)),
        "status": "Succeeded" if success else "Failed",
        "success": success,
        "done": True,
        "checkOnly": check_only,
        "numberComponentsTotal": total,
        "numberComponentsDeployed": len(successes) if success else 0,
        "numberComponentErrors": len(failures),
        "details": {"componentSuccesses": successes,
                    "componentFailures": [failure.as_json() for failure in failures]},
        "permissionSetAssignments": assigned or [],
    }


# -- the package ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldComponent:
    sobject: str
    name: str
    spec: dict[str, Any]  # FieldDef.from_spec input
    file: str

    @property
    def full_name(self) -> str:
        return f"{self.sobject}.{self.name}"


@dataclass(frozen=True)
class FieldPermission:
    sobject: str
    field: str
    readable: bool
    editable: bool
    line: int
    column: int


@dataclass(frozen=True)
class ObjectPermission:
    sobject: str
    levels: frozenset[str]  # allowRead, allowEdit, ... that are true
    line: int
    column: int


@dataclass(frozen=True)
class PermissionSetComponent:
    name: str
    label: str
    fields: tuple[FieldPermission, ...]
    objects: tuple[ObjectPermission, ...]
    file: str


@dataclass(frozen=True)
class MetadataPackage:
    version: str
    fields: tuple[FieldComponent, ...]
    permission_sets: tuple[PermissionSetComponent, ...]

    @property
    def size(self) -> int:
        return len(self.fields) + len(self.permission_sets)


@dataclass
class _Reading:
    """Failures gathered while reading, so one deploy names every problem."""

    failures: list[Failure] = field(default_factory=list)

    def fail(self, kind: str, name: str, file: str, problem: str, line: int = 0,
             column: int = 0) -> None:
        self.failures.append(Failure(kind, name, file, problem, line, column))

    def issues(self, kind: str, name: str, file: str, issues: list[Issue]) -> None:
        for issue in issues:
            self.fail(kind, name, file, issue.message, issue.line, issue.column)


def files_from_folder(folder: Path) -> dict[str, bytes]:
    """The package's XML and JSON files under `folder`, by relative POSIX path."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix not in (".xml", ".json"):
            continue
        size = path.stat().st_size
        total += size
        if size > MAX_FILE_BYTES or total > MAX_TOTAL_BYTES or len(files) >= MAX_FILES:
            raise ValueError(f"{folder} is too large for a metadata package (at most "
                             f"{MAX_FILES} files, {MAX_FILE_BYTES} bytes each)")
        files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def files_from_zip(data: bytes) -> dict[str, bytes]:
    """The package's XML and JSON entries of a zip, refusing unsafe names and oversize data."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("the body is not a zip file") from None
    files: dict[str, bytes] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            if info.is_dir() or name.suffix not in (".xml", ".json"):
                continue
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(f"zip entry {info.filename!r} points outside the package")
            total += info.file_size
            if info.file_size > MAX_FILE_BYTES or total > MAX_TOTAL_BYTES \
                    or len(files) >= MAX_FILES:
                raise ValueError("the zip is too large for a metadata package")
            files[name.as_posix()] = archive.read(info)
    return files


def read_package(files: Mapping[str, bytes]) -> MetadataPackage:
    """Manifest, project and component files, checked; DeployFailed lists every failure."""
    reading = _Reading()
    manifests = sorted((name for name in files if PurePosixPath(name).name == "package.xml"),
                       key=lambda name: (name.count("/"), name))
    if not manifests:
        raise DeployFailed([Failure("", "package.xml", "package.xml",
                                    "No package.xml found: deploy with a manifest")])
    manifest = manifests[0]
    root = str(PurePosixPath(manifest).parent)
    prefix = "" if root == "." else root + "/"
    directories = _package_directories(files, prefix, reading)
    members, version = _manifest(files[manifest], manifest, reading)
    sources = {name[len(prefix):]: data for name, data in files.items()
               if name.startswith(prefix)}
    index = _index_sources(sources, directories)
    fields: list[FieldComponent] = []
    permission_sets: list[PermissionSetComponent] = []
    for kind, member, line, column in members:
        paths = index.get((kind, member.lower()), [])
        if len(paths) != 1:
            reading.fail(kind, member, manifest, (
                f"An object '{member}' of type {kind} was named in package.xml, but was not "
                f"found in the package directories ({', '.join(directories) or 'none'})"
                if not paths else f"{kind} {member} is defined twice: {', '.join(paths)}"
            ), line, column)
            continue
        path = paths[0]
        if kind == "CustomField":
            component = _read_field(member, path, sources[path], reading)
            if component is not None:
                fields.append(component)
        else:
            permission_set = _read_permission_set(member, path, sources[path], reading)
            if permission_set is not None:
                permission_sets.append(permission_set)
    if reading.failures:
        raise DeployFailed(reading.failures, len(members))
    return MetadataPackage(version, tuple(fields), tuple(permission_sets))


def _package_directories(files: Mapping[str, bytes], prefix: str,
                         reading: _Reading) -> list[str]:
    """`packageDirectories` of sfdx-project.json: where source-format files are looked up."""
    name = prefix + "sfdx-project.json"
    if name not in files:
        reading.fail("", "sfdx-project.json", name, (
            "sfdx-project.json not found next to package.xml: a source-format deploy runs "
            "in a Salesforce DX project"
        ))
        return []
    try:
        project = json.loads(files[name])
        paths = [entry["path"] for entry in project["packageDirectories"]]
    except (ValueError, KeyError, TypeError):
        reading.fail("", "sfdx-project.json", name, (
            "sfdx-project.json must be JSON with packageDirectories: [{\"path\": ...}]"
        ))
        return []
    directories = []
    for path in paths:
        clean = PurePosixPath(str(path))
        if clean.is_absolute() or ".." in clean.parts:
            reading.fail("", "sfdx-project.json", name,
                         f"package directory {path!r} must be inside the project")
            continue
        directories.append(clean.as_posix())
    return directories


def _manifest(data: bytes, file: str, reading: _Reading
              ) -> tuple[list[tuple[str, str, int, int]], str]:
    """(type, member, line, column) of every component named, and the API version."""
    element = _parsed(data, "Package", ("", "package.xml"), file, reading)
    if element is None:
        return [], ""
    version = element.value("version") or ""
    if parse_version(version) is None:
        at = element.child("version") or element
        reading.fail("", "package.xml", file, (
            f"version {version!r} is not an API version this org supports (20.0-62.0)"
        ), at.line, at.column)
    members: list[tuple[str, str, int, int]] = []
    for types in element.all("types"):
        kind = types.value("name") or ""
        if kind not in SUPPORTED_TYPES:
            reading.fail(kind, kind, file, (
                f"the sandbox deploys {' and '.join(SUPPORTED_TYPES)} components only, not "
                f"{kind!r}"
            ), types.line, types.column)
            continue
        for member in types.all("members"):
            name = member.text.strip()
            if "*" in name:
                reading.fail(kind, name, file, "name each component; wildcards are not "
                             "deployable from a manifest here", member.line, member.column)
            elif kind == "CustomField" and name.count(".") != 1:
                reading.fail(kind, name, file, (
                    f"CustomField members are Object.Field__c, got {name!r}"
                ), member.line, member.column)
            else:
                members.append((kind, name, member.line, member.column))
    return members, version


def _index_sources(sources: Mapping[str, bytes], directories: list[str]
                   ) -> dict[tuple[str, str], list[str]]:
    index: dict[tuple[str, str], list[str]] = {}
    for path in sorted(sources):
        if not any(path.startswith(directory.rstrip("/") + "/") for directory in directories):
            continue
        if match := _FIELD_FILE.search(path):
            key = ("CustomField", f"{match[1]}.{match[2]}".lower())
        elif match := _PERMSET_FILE.search(path):
            key = ("PermissionSet", match[1].lower())
        else:
            continue
        index.setdefault(key, []).append(path)
    return index


def _parsed(data: bytes, type_name: str, component: tuple[str, str], file: str,
            reading: _Reading) -> Element | None:
    """The file's root if it is well-formed and structured as `type_name`, else None."""
    kind, name = component
    try:
        element = parse(data)
    except XmlFileError as error:
        reading.fail(kind, name, file, error.message, error.line, error.column)
        return None
    issues = validate(element, type_name)
    reading.issues(kind, name, file, issues)
    return None if issues else element


def _read_field(member: str, file: str, data: bytes, reading: _Reading) -> FieldComponent | None:
    sobject, name = member.split(".")
    element = _parsed(data, "CustomField", ("CustomField", member), file, reading)
    if element is None:
        return None
    before = len(reading.failures)

    def fail(problem: str, at: Element | None = None) -> None:
        where = at or element
        reading.fail("CustomField", member, file, problem, where.line, where.column)

    full_name = element.value("fullName")
    if full_name is not None and full_name != name:
        fail(f"fullName {full_name} does not match the file name {name}",
             element.child("fullName"))
    bare = name.removesuffix("__c")
    if not name.endswith("__c") or len(bare) > 40 or not _API_NAME.match(bare):
        fail(f"{name} is not a custom field name (letters, digits and single underscores, "
             "at most 40 characters, ending in __c)")
    for child in element.children:
        if child.name not in FIELD_ELEMENTS:
            fail(f"the sandbox does not emulate {child.name} on custom fields", child)
    label = element.value("label") or ""
    if not 0 < len(label) <= 40:
        fail("Must specify a non-empty label for the CustomField (at most 40 characters)")
    kind = element.value("type")
    if kind is None:
        fail("Must specify the type of the CustomField")
        return None
    if kind not in FIELD_TYPES:
        fail(f"the sandbox does not emulate fields of type {kind} (it emulates "
             f"{', '.join(sorted(FIELD_TYPES))})", element.child("type"))
        return None
    spec = _field_spec(element, kind, name, label, fail)
    return None if len(reading.failures) > before else FieldComponent(sobject, name, spec, file)


def _field_spec(element: Element, kind: str, name: str, label: str,
                fail: Fail) -> dict[str, Any]:
    for child_name in ("length", "precision", "scale", "visibleLines", "valueSet"):
        child = element.child(child_name)
        if child is not None and child_name not in TYPE_ELEMENTS.get(kind, frozenset()):
            fail(f"Can not specify '{child_name}' for a CustomField of type {kind}", child)
    for required in REQUIRED_ELEMENTS.get(kind, ()):
        if element.child(required) is None:
            fail(f"Must specify '{required}' for a CustomField of type {kind}")
    length = int(element.value("length") or 0)
    if kind in LENGTHS and element.child("length") is not None:
        low, high = LENGTHS[kind]
        if not low <= length <= high:
            fail(f"Length of a {kind} field must be {low} to {high}, got {length}",
                 element.child("length"))
    precision = int(element.value("precision") or 0)
    scale = int(element.value("scale") or 0)
    if kind in ("Number", "Currency", "Percent") and element.child("precision") is not None \
            and not (1 <= precision <= 18 and 0 <= scale <= precision):
        fail("The sum of the length and decimal places must be an integer less than or "
             f"equal to 18 (precision {precision}, scale {scale})", element.child("precision"))
    external = boolean(element.value("externalId"))
    unique = boolean(element.value("unique"))
    for flag, on in (("externalId", external), ("unique", unique)):
        if on and kind not in EXTERNAL_ID_TYPES:
            fail(f"{flag} applies to Text, Number and Email fields, not {kind}",
                 element.child(flag))
    default = element.value("defaultValue")
    if kind == "Checkbox" and default is not None and default not in ("true", "false"):
        fail(f"A Checkbox defaultValue is true or false, got {default!r}",
             element.child("defaultValue"))
    values, restricted = _picklist(element, fail) if kind == "Picklist" else ([], False)
    return {
        "name": name, "type": FIELD_TYPES[kind], "label": label,
        "length": length or {"TextArea": 255}.get(kind, 0),
        "precision": precision, "scale": scale, "required": boolean(element.value("required")),
        "externalId": external, "idLookup": external, "unique": unique,
        "picklistValues": values, "restrictedPicklist": restricted,
        "defaultValue": default == "true" if kind == "Checkbox" else None,
    }


def _picklist(element: Element, fail: Fail) -> tuple[list[str], bool]:
    value_set = element.child("valueSet")
    if value_set is None:
        return [], False
    definition = value_set.child("valueSetDefinition")
    if definition is None:
        fail("a picklist needs valueSet.valueSetDefinition (global value sets are not "
             "emulated)", value_set)
        return [], False
    values = [item.value("fullName") or "" for item in definition.all("value")]
    if not values or "" in values:
        fail("every picklist value needs a fullName, and a picklist at least one value",
             definition)
    if len({value.casefold() for value in values}) != len(values):
        fail("a picklist lists a value twice", definition)
    defaults = [item for item in definition.all("value") if boolean(item.value("default"))]
    if len(defaults) > 1:
        fail("a picklist has at most one default value", defaults[1])
    return values, boolean(value_set.value("restricted"))


def _read_permission_set(member: str, file: str, data: bytes,
                         reading: _Reading) -> PermissionSetComponent | None:
    element = _parsed(data, "PermissionSet", ("PermissionSet", member), file, reading)
    if element is None:
        return None
    before = len(reading.failures)

    def fail(problem: str, at: Element | None = None) -> None:
        where = at or element
        reading.fail("PermissionSet", member, file, problem, where.line, where.column)

    full_name = element.value("fullName")
    if full_name is not None and full_name != member:
        fail(f"fullName {full_name} does not match the file name {member}",
             element.child("fullName"))
    if not _API_NAME.match(member):
        fail(f"{member} is not a permission set API name")
    label = element.value("label") or ""
    if not 0 < len(label) <= 80:
        fail("a permission set label is 1 to 80 characters", element.child("label"))
    for child in element.children:
        if child.name not in PERMISSION_SET_ELEMENTS:
            fail(f"the sandbox emulates field and object permissions only; {child.name} is "
                 "not emulated", child)
    if boolean(element.value("hasActivationRequired")):
        fail("session-activated permission sets are not emulated",
             element.child("hasActivationRequired"))
    fields = _field_permissions(element, fail)
    objects = _object_permissions(element, fail)
    if len(reading.failures) > before:
        return None
    return PermissionSetComponent(member, label, fields, objects, file)


def _field_permissions(element: Element, fail: Fail) -> tuple[FieldPermission, ...]:
    found: dict[str, FieldPermission] = {}
    for entry in element.all("fieldPermissions"):
        name = entry.value("field") or ""
        sobject, _, field_name = name.partition(".")
        readable, editable = boolean(entry.value("readable")), boolean(entry.value("editable"))
        if not sobject or not field_name or "." in field_name:
            fail(f"field {name!r} must be Object.Field", entry)
        elif name.lower() in found:
            fail(f"field permissions for {name} are given twice", entry)
        elif editable and not readable:
            fail(f"Field {name}: editable requires readable", entry)
        else:
            found[name.lower()] = FieldPermission(sobject, field_name, readable, editable,
                                                  entry.line, entry.column)
    return tuple(found.values())


def _object_permissions(element: Element, fail: Fail) -> tuple[ObjectPermission, ...]:
    found: dict[str, ObjectPermission] = {}
    for entry in element.all("objectPermissions"):
        sobject = entry.value("object") or ""
        levels = frozenset(child.name for child in entry.children
                           if child.name.startswith(("allow", "modify", "view"))
                           and boolean(child.text.strip()))
        broken = [(name, label) for flag, needs, name, label in OBJECT_DEPENDENCIES
                  if flag in levels and needs not in levels]
        if sobject.lower() in found:
            fail(f"object permissions for {sobject} are given twice", entry)
        elif broken:
            fail(f"Permission {broken[0][0]} on {sobject} depends on permission(s): "
                 f"{', '.join(dict.fromkeys(label for _, label in broken))}", entry)
        else:
            found[sobject.lower()] = ObjectPermission(sobject, levels, entry.line, entry.column)
    return tuple(found.values())


# -- against the org ---------------------------------------------------------------------------


class MetadataStore(Protocol):
    """What a deploy needs of the data store (emulators.salesforce.store.SalesforceStore)."""

    @property
    def path(self) -> Path: ...

    def define_field(self, sobject: str, spec: dict[str, Any]) -> dict[str, Any]: ...

    def set_field_access(self, sobject: str, field: str, access: str) -> None: ...


def org_catalog(store: MetadataStore) -> tuple[Catalog, set[tuple[str, str]]]:
    """The merged catalog, and which (object, field) were added at run time.

    Read from the store's database, where run-time fields and access overrides live (the
    store keeps its own merged view private); read-only, so it never competes with writes.
    """
    uri = f"{store.path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        custom = [(obj, FieldDef.from_spec(json.loads(spec))) for obj, spec in
                  conn.execute("SELECT object, spec FROM _custom_fields ORDER BY rowid")]
        access = {(obj, name): level for obj, name, level in
                  conn.execute("SELECT object, field, access FROM _field_access")}
    return Catalog(custom, access), {(obj.lower(), item.name.lower()) for obj, item in custom}


def _same_definition(old: FieldDef, new: FieldDef) -> bool:
    keys = ("type", "length", "precision", "scale", "picklist", "restricted", "external_id",
            "unique", "required")
    return all(getattr(old, key) == getattr(new, key) for key in keys)


def _check_fields(catalog: Catalog, runtime: set[tuple[str, str]],
                  package: MetadataPackage, failures: list[Failure]) -> dict[str, str]:
    """Per field full name: "create", "update" or "unchanged"."""
    plans: dict[str, str] = {}
    for component in package.fields:
        obj = catalog.full(component.sobject)
        if obj is None:
            failures.append(Failure("CustomField", component.full_name, component.file,
                                    f"Cannot find object {component.sobject} in the org"))
            continue
        new = FieldDef.from_spec(component.spec)
        existing = obj.field(component.name)
        if existing is None:
            plans[component.full_name] = "create"
        elif _same_definition(existing, new):
            plans[component.full_name] = "unchanged"
        elif (obj.name.lower(), existing.name.lower()) in runtime:
            plans[component.full_name] = "update"
        else:
            failures.append(Failure("CustomField", component.full_name, component.file, (
                f"{obj.name}.{existing.name} exists as {existing.type} (length "
                f"{existing.length}, precision {existing.precision}, scale {existing.scale}); "
                f"the sandbox cannot change a field of its built-in catalog to {new.type}"
            )))
    return plans


def _check_permissions(catalog: Catalog, package: MetadataPackage,
                       failures: list[Failure]) -> None:
    deployed = {component.full_name.lower() for component in package.fields}
    for permission_set in package.permission_sets:
        def fail(problem: str, line: int, column: int,
                 permission_set: PermissionSetComponent = permission_set) -> None:
            failures.append(Failure("PermissionSet", permission_set.name,
                                    permission_set.file, problem, line, column))

        for object_grant in permission_set.objects:
            if catalog.full(object_grant.sobject) is None:
                fail(f"In field: object - no CustomObject named {object_grant.sobject} found",
                     object_grant.line, object_grant.column)
        for grant in permission_set.fields:
            name = f"{grant.sobject}.{grant.field}"
            obj = catalog.full(grant.sobject)
            item = obj.field(grant.field) if obj is not None else None
            if item is None and name.lower() not in deployed:
                fail(f"In field: field - no CustomField named {name} found",
                     grant.line, grant.column)
            elif item is None:
                continue
            elif item.name == "Id" or item.name in SYSTEM_FIELDS:
                fail(f"You cannot deploy to a system field: {name}", grant.line, grant.column)
            elif item.required:
                fail(f"You cannot deploy to a required field: {name}", grant.line, grant.column)
            elif grant.editable and not (item.createable or item.updateable):
                fail(f"Field {name} is read-only and cannot be editable",
                     grant.line, grant.column)


def deploy(store: MetadataStore, package: MetadataPackage, *, assign: bool = True,
           check_only: bool = False) -> dict[str, Any]:
    """Check the package against the org, then apply it all; DeployFailed if anything fails."""
    with _DEPLOY_LOCK:
        catalog, runtime = org_catalog(store)
        failures: list[Failure] = []
        plans = _check_fields(catalog, runtime, package, failures)
        _check_permissions(catalog, package, failures)
        if failures:
            raise DeployFailed(failures, package.size)
        successes = [
            {"componentType": "CustomField", "fullName": c.full_name, "fileName": c.file,
             "created": plans[c.full_name] == "create",
             "changed": plans[c.full_name] != "unchanged", "deleted": False, "success": True,
             "problem": None}
            for c in package.fields
        ] + [
            {"componentType": "PermissionSet", "fullName": p.name, "fileName": p.file,
             "created": True, "changed": True, "deleted": False, "success": True,
             "problem": None}
            for p in package.permission_sets
        ]
        assigned: list[dict[str, Any]] = []
        if not check_only:
            for component in package.fields:
                if plans[component.full_name] != "unchanged":
                    store.define_field(component.sobject, component.spec)
                if plans[component.full_name] == "create":
                    # A new field is visible to nobody until a permission grants it.
                    store.set_field_access(component.sobject, component.name, "hidden")
            if assign:
                assigned = [_assign(store, permission_set)
                            for permission_set in package.permission_sets]
        return _result(True, successes, [], package.size, check_only=check_only,
                       assigned=assigned)


def _assign(store: MetadataStore, permission_set: PermissionSetComponent) -> dict[str, Any]:
    """Raise the integration user's field access to what the set grants (never lower it)."""
    catalog, _ = org_catalog(store)
    raised = []
    for grant in permission_set.fields:
        full = catalog.full(grant.sobject)
        visible = catalog.visible(grant.sobject)
        item = full.field(grant.field) if full is not None else None
        seen = visible.field(grant.field) if visible is not None else None
        if item is None:
            continue
        level = "hidden" if seen is None else (
            "read" if (item.updateable and not seen.updateable) else "edit")
        wanted = "edit" if grant.editable else "read"
        if (wanted == "edit" and level != "edit") or (wanted == "read" and level == "hidden"):
            store.set_field_access(grant.sobject, item.name, wanted)
            raised.append(f"{grant.sobject}.{item.name}")
    return {"permissionSet": permission_set.name, "assignee": "integration user",
            "fieldsRaised": raised,
            "objects": sorted(grant.sobject for grant in permission_set.objects)}


# -- admin route -------------------------------------------------------------------------------

blueprint = Blueprint("metadata", __name__, url_prefix="/__admin/metadata")


def _flag(value: Any, default: bool, name: str) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1", "false", "0"):
        return str(value).lower() in ("true", "1")
    raise ValueError(f"{name} must be true or false, got {value!r}")


@blueprint.errorhandler(ValueError)
def _bad_request(exc: ValueError) -> tuple[Response, int]:
    if isinstance(exc, DeployFailed):
        return jsonify(exc.result()), 400
    return jsonify({"error": str(exc)}), 400


@blueprint.post("/deploy")
def deploy_route() -> Response:
    """Deploy a package folder or zip (path in JSON, or a zip body) and assign its sets."""
    if request.mimetype in ("application/zip", "application/octet-stream"):
        options: Mapping[str, Any] = request.args
        files = files_from_zip(request.get_data())
    else:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("path"), str):
            raise ValueError('deploy needs {"path": "<package folder or .zip>"} or a zip body '
                             "(Content-Type: application/zip)")
        options = body
        path = Path(body["path"])
        _flag(options.get("assign"), True, "assign")  # a bad option fails before any reading
        _flag(options.get("check_only"), False, "check_only")
        files = files_from_zip(path.read_bytes()) if path.suffix == ".zip" and path.is_file() \
            else files_from_folder(path)
    assign = _flag(options.get("assign"), True, "assign")
    check_only = _flag(options.get("check_only"), False, "check_only")
    state = current()
    result = deploy(state.store, read_package(files), assign=assign, check_only=check_only)
    state.relationship_types.clear()
    return jsonify(result)
