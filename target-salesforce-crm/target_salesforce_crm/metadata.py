"""`salesforce-crm-metadata`: the custom fields and the permission set the sync needs, as files.

The native integration asks for "Modify All Data" because it creates its own fields. This
tool writes instead what an administrator deploys once with the Salesforce CLI: a CustomField
for every custom field the mappings declare (`crm_field:` blocks), and a PermissionSet that
grants exactly what the sync uses — Edit on the fields the target writes, Read on the
fields it matches on and on those tap-salesforce-crm reads, and object access to match —
so the integration user needs nothing else.

Format: Salesforce DX *source format* with a `package.xml` manifest (one documented format):

    <out>/sfdx-project.json
    <out>/package.xml                                  manifest: CustomField, PermissionSet
    <out>/force-app/main/default/objects/<Object>/fields/<Field>.field-meta.xml
    <out>/force-app/main/default/permissionsets/<Name>.permissionset-meta.xml

deployed from `<out>` with `sf project deploy start --manifest package.xml`. Elements are
written in the order of the Metadata API WSDL (`http://soap.sforce.com/2006/04/metadata`),
which deploys enforce.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from xml.sax.saxutils import escape

from crm_sync_mapping import (
    CrmField,
    ForwardMapping,
    MappingError,
    ObjectMapping,
    ReverseMapping,
    ReverseObjectMapping,
    load_forward_mapping,
    load_reverse_mapping,
    locate,
)

from target_salesforce_crm.tap.tap import CORE_FIELDS, SEGMENT_OBJECT

NAMESPACE = "http://soap.sforce.com/2006/04/metadata"
DEFAULT_PERMISSION_SET = "Personalization_CRM_Sync"
DEFAULT_API_VERSION = "59.0"
PACKAGE_DIR = "force-app"
SOURCE_ROOT = f"{PACKAGE_DIR}/main/default"
GENERATED = ("sfdx-project.json", "package.xml", "README.md", PACKAGE_DIR)

# Fields no permission set can name: Salesforce shows them to everyone who can read the
# object. A deploy naming one fails ("You cannot deploy to a required field: Lead.Status").
SYSTEM_FIELDS = frozenset({
    "Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
    "SystemModstamp", "OwnerId", "MasterRecordId", "LastActivityDate", "LastViewedDate",
    "LastReferencedDate",
})
ALWAYS_VISIBLE: dict[str, frozenset[str]] = {
    "Account": frozenset({"Name"}),
    "Contact": frozenset({"LastName", "Name"}),
    "Lead": frozenset({"LastName", "Name", "Company", "Status", "IsConverted", "ConvertedDate",
                       "ConvertedAccountId", "ConvertedContactId", "ConvertedOpportunityId"}),
    "Campaign": frozenset({"Name"}),
    "CampaignMember": frozenset({"CampaignId", "ContactId", "LeadId", "Status",
                                 "HasResponded"}),
}
# Standard relationship names the tap may read through (`Campaign.Name`): lookup field and
# the object it points to (None: no object permission exists for it, e.g. User).
RELATIONSHIPS: dict[str, tuple[str, str | None]] = {
    "Account": ("AccountId", "Account"),
    "Contact": ("ContactId", "Contact"),
    "Lead": ("LeadId", "Lead"),
    "Campaign": ("CampaignId", "Campaign"),
    "ConvertedAccount": ("ConvertedAccountId", "Account"),
    "ConvertedContact": ("ConvertedContactId", "Contact"),
    "Owner": ("OwnerId", None),
    "CreatedBy": ("CreatedById", None),
    "LastModifiedBy": ("LastModifiedById", None),
}
_API_NAME = re.compile(r"^[A-Za-z](?!.*__)[A-Za-z0-9_]{0,78}[A-Za-z0-9]$|^[A-Za-z]$")
_VERSION = re.compile(r"^\d{2}\.0$")
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class MetadataError(Exception):
    """The mappings cannot be turned into a package; one line per problem, with file:line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class CustomFieldDef:
    """One CustomField component: `sobject.name`, as declared by `crm_field:`."""

    sobject: str
    name: str
    spec: CrmField
    external_id: bool

    @property
    def full_name(self) -> str:
        return f"{self.sobject}.{self.name}"


@dataclass
class MetadataPlan:
    """What the package holds: field definitions and the grants of the permission set."""

    fields: dict[str, CustomFieldDef] = field(default_factory=dict)  # by lower full name
    field_access: dict[tuple[str, str], bool] = field(default_factory=dict)  # → editable
    object_access: dict[str, set[str]] = field(default_factory=dict)  # → {"read", "edit", ...}
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def grant_object(self, sobject: str, *levels: str) -> None:
        self.object_access.setdefault(sobject, set()).update(("read", *levels))

    def grant_field(self, sobject: str, name: str, *, editable: bool) -> None:
        """Read (and Edit) on a field, unless Salesforce shows it to everyone anyway."""
        if name in SYSTEM_FIELDS or name in ALWAYS_VISIBLE.get(sobject, ()):
            return
        key = (sobject, name)
        self.field_access[key] = self.field_access.get(key, False) or editable

    def define(self, definition: CustomFieldDef, where: Callable[[], str]) -> None:
        """Add a field definition; `where` (file:line, only worked out when needed) names a
        second, different definition of the same field."""
        key = definition.full_name.lower()
        known = self.fields.get(key)
        if known is None:
            self.fields[key] = definition
        elif known.spec != definition.spec:
            self.problems.append(
                f"{where()}: {definition.full_name} is declared differently in the two "
                "mapping files: give both the same crm_field"
            )
        elif definition.external_id and not known.external_id:
            self.fields[key] = definition


# -- planning -----------------------------------------------------------------------------


def plan_metadata(forward: ForwardMapping, reverse: ReverseMapping | None = None, *,
                  include_disabled: bool = False) -> MetadataPlan:
    """Fields and grants for the enabled objects of both mappings; MetadataError if incomplete.

    Disabled objects (Lead by default) get nothing unless `include_disabled`: least privilege
    follows what the sync does now, and preflight names what a newly enabled object lacks.
    """
    plan = MetadataPlan()
    for obj in forward.objects:
        if obj.enabled or include_disabled:
            _plan_forward(plan, forward, obj, reverse)
    if reverse is not None:
        for robj in reverse.objects:
            if robj.enabled:
                _plan_reverse(plan, reverse, robj, forward)
        if reverse.segments is not None:
            plan.grant_object(SEGMENT_OBJECT)
            for name in CORE_FIELDS[SEGMENT_OBJECT]:
                _grant_read(plan, SEGMENT_OBJECT, name, reverse.path)
    if plan.problems:
        raise MetadataError(sorted(plan.problems, key=_file_order))
    return plan


def _file_order(problem: str) -> tuple[str, int, int]:
    """Problems in the order of the files and lines they point at."""
    match = re.match(r"^(.*?):(\d+):(\d+): ", problem)
    return (match[1], int(match[2]), int(match[3])) if match else (problem, 0, 0)


def _plan_forward(plan: MetadataPlan, mapping: ForwardMapping, obj: ObjectMapping,
                  reverse: ReverseMapping | None) -> None:
    upsert = obj.write.mode == "upsert"
    plan.grant_object(obj.sobject, "edit", *(("create",) if upsert else ()))
    written: dict[str, tuple[str | int, ...]] = {}
    for mapping_field in obj.fields:
        written.setdefault(mapping_field.target, ("fields", mapping_field.target))
    for default in obj.write.create_defaults:
        written.setdefault(default.target, ("write", "create_defaults", default.target))
    matched: dict[str, tuple[str | int, ...]] = {}
    for index, rule in enumerate(obj.match):
        if not rule.enabled:
            continue
        matched.setdefault(rule.field, ("match", index))
        if rule.fuzzy is not None and rule.fuzzy.tie_breaker_field:
            matched.setdefault(rule.fuzzy.tie_breaker_field, ("match", index))
    if obj.exclude_converted:
        matched.setdefault("IsConverted", ("exclude_converted",))
    for name, keys in {**matched, **written}.items():
        editable = name in written
        plan.grant_field(obj.sobject, name, editable=editable)
        if not name.endswith("__c"):
            continue
        declared = obj.crm_field(name)
        robj = reverse.object(obj.sobject) if reverse is not None else None
        if declared is None and robj is not None:
            declared = robj.crm_field(name)
        place = ("objects", obj.sobject, *keys)
        if declared is None:
            plan.problems.append(_undeclared(_where(mapping.path, place), obj.sobject, name))
            continue
        external = declared.external_id or name.lower() == (obj.write.external_id or "").lower()
        plan.define(CustomFieldDef(obj.sobject, name, declared, external),
                    partial(_where, mapping.path, place))


def _plan_reverse(plan: MetadataPlan, mapping: ReverseMapping, robj: ReverseObjectMapping,
                  forward: ForwardMapping) -> None:
    plan.grant_object(robj.sobject)
    names = [*CORE_FIELDS.get(robj.sobject, ("Id", "IsDeleted")), *sorted(robj.crm_fields())]
    for name in dict.fromkeys(names):
        if "." in name:
            _grant_read(plan, robj.sobject, name, mapping.path)
            continue
        plan.grant_field(robj.sobject, name, editable=False)
        if not name.endswith("__c"):
            continue
        declared = robj.crm_field(name)
        key = f"{robj.sobject}.{name}".lower()
        if declared is None and key in plan.fields:
            continue  # defined by the forward mapping
        if declared is None:
            forward_obj = next((o for o in forward.objects if o.sobject == robj.sobject), None)
            declared = forward_obj.crm_field(name) if forward_obj is not None else None
        place = ("objects", robj.sobject, *_reverse_keys(robj, name))
        if declared is None:
            plan.problems.append(_undeclared(_where(mapping.path, place), robj.sobject, name))
            continue
        plan.define(CustomFieldDef(robj.sobject, name, declared, declared.external_id),
                    partial(_where, mapping.path, place))


def _reverse_keys(robj: ReverseObjectMapping, name: str) -> tuple[str | int, ...]:
    for index, rule in enumerate(robj.identity):
        if rule.source.lower() == name.lower():
            return ("identity", index)
    for attribute in robj.attributes:
        if attribute.source.lower() == name.lower():
            return ("attributes", attribute.target)
    return ()


def _grant_read(plan: MetadataPlan, sobject: str, name: str, path: Path) -> None:
    """Read on a field, or on the lookup, parent object and parent field of `Rel.Field`."""
    if "." not in name:
        plan.grant_field(sobject, name, editable=False)
        return
    relationship, _, parent_field = name.partition(".")
    if relationship.endswith("__r"):
        plan.grant_field(sobject, relationship[:-3] + "__c", editable=False)
        plan.notes.append(
            f"{path}: {sobject} reads {name}; grant Read on the object {relationship} points "
            f"to and on its field {parent_field} in addition (the package cannot know the object)"
        )
        return
    lookup, parent = RELATIONSHIPS.get(relationship, (relationship + "Id", None))
    plan.grant_field(sobject, lookup, editable=False)
    if parent is not None and "." not in parent_field:
        plan.grant_object(parent)
        plan.grant_field(parent, parent_field, editable=False)
    elif relationship not in RELATIONSHIPS:
        plan.notes.append(
            f"{path}: {sobject} reads {name}; grant Read on the object {relationship} points to "
            f"and on {parent_field} in addition (unknown relationship)"
        )


def _where(path: Path, keys: tuple[str | int, ...]) -> str:
    """`file:line:column` of a key in a mapping file."""
    found = locate(path, keys)
    return f"{found.file}:{found.line}:{found.column}"


def _undeclared(where: str, sobject: str, name: str) -> str:
    return (
        f"{where}: {sobject}.{name} is a custom field without crm_field: declare its type "
        "there (e.g. crm_field: {type: Text, length: 255}; see transforms/README.md) so the "
        "package can define it"
    )


# -- XML ------------------------------------------------------------------------------------

Node = tuple[str, "str | list[Node]"]


def _text(value: str) -> str:
    if _XML_FORBIDDEN.search(value):
        raise MetadataError([f"{value!r} holds a control character XML cannot carry"])
    return escape(value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def render(root: str, children: Iterable[Node]) -> bytes:
    """One metadata file: declaration, root in the metadata namespace, 4-space indentation."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<{root} xmlns="{NAMESPACE}">']
    _render(list(children), 1, lines)
    lines.append(f"</{root}>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _render(nodes: list[Node], depth: int, lines: list[str]) -> None:
    pad = "    " * depth
    for name, value in nodes:
        if isinstance(value, list):
            lines.append(f"{pad}<{name}>")
            _render(value, depth + 1, lines)
            lines.append(f"{pad}</{name}>")
        else:
            lines.append(f"{pad}<{name}>{_text(value)}</{name}>")


def custom_field_xml(definition: CustomFieldDef) -> bytes:
    """A `.field-meta.xml` file; elements in CustomField's WSDL sequence order."""
    spec = definition.spec
    kind = spec.type
    nodes: list[Node] = [("fullName", definition.name)]
    if kind == "Checkbox":
        nodes.append(("defaultValue", _bool(spec.default_value)))
    if spec.description:
        nodes.append(("description", spec.description))
    if kind in ("Text", "Number", "Email"):
        nodes.append(("externalId", _bool(definition.external_id)))
    if spec.help_text:
        nodes.append(("inlineHelpText", spec.help_text))
    nodes.append(("label", spec.label))
    if kind in ("Text", "LongTextArea"):
        nodes.append(("length", str(spec.length)))
    if kind == "Number":
        nodes.append(("precision", str(spec.precision)))
    if kind != "Checkbox":
        nodes.append(("required", "false"))
    if kind == "Number":
        nodes.append(("scale", str(spec.scale or 0)))
    nodes.append(("type", kind))
    if kind in ("Text", "Number", "Email"):
        nodes.append(("unique", _bool(spec.unique)))
    if kind == "Picklist":
        values: list[Node] = [("sorted", "false")]
        values += [("value", [("fullName", value), ("default", "false"), ("label", value)])
                   for value in spec.values]
        nodes.append(("valueSet", [("restricted", _bool(spec.restricted)),
                                   ("valueSetDefinition", values)]))
    if kind == "LongTextArea":
        nodes.append(("visibleLines", str(spec.visible_lines)))
    return render("CustomField", nodes)


def permission_set_xml(plan: MetadataPlan, label: str, description: str) -> bytes:
    """A `.permissionset-meta.xml` file: field and object permissions, nothing else."""
    nodes: list[Node] = [("description", description)]
    for (sobject, name), editable in sorted(plan.field_access.items()):
        nodes.append(("fieldPermissions", [("editable", _bool(editable)),
                                           ("field", f"{sobject}.{name}"),
                                           ("readable", "true")]))
    nodes.append(("hasActivationRequired", "false"))
    nodes.append(("label", label))
    for sobject, levels in sorted(plan.object_access.items()):
        nodes.append(("objectPermissions", [
            ("allowCreate", _bool("create" in levels)),
            ("allowDelete", "false"),
            ("allowEdit", _bool("edit" in levels)),
            ("allowRead", "true"),
            ("modifyAllRecords", "false"),
            ("object", sobject),
            ("viewAllRecords", "false"),
        ]))
    return render("PermissionSet", nodes)


def package_xml(plan: MetadataPlan, permission_set: str, api_version: str) -> bytes:
    """The manifest naming every component, by type."""
    fields = sorted(definition.full_name for definition in plan.fields.values())
    types: list[Node] = []
    if fields:
        types.append(("types", [*(("members", name) for name in fields), ("name", "CustomField")]))
    types.append(("types", [("members", permission_set), ("name", "PermissionSet")]))
    return render("Package", [*types, ("version", api_version)])


def project_json(api_version: str) -> str:
    return json.dumps({
        "packageDirectories": [{"path": PACKAGE_DIR, "default": True}],
        "name": "personalization-crm-sync-metadata",
        "namespace": "",
        "sourceApiVersion": api_version,
    }, indent=2) + "\n"


def readme(plan: MetadataPlan, permission_set: str) -> str:
    lines = [
        "# Salesforce metadata for the Personalization ↔ CRM sync",
        "",
        "Generated by `salesforce-crm-metadata` from the mapping files; regenerate it after",
        "changing them instead of editing these files. See docs/least-privilege.md.",
        "",
        "```sh",
        "sf project deploy start --manifest package.xml --target-org <org> --dry-run",
        "sf project deploy start --manifest package.xml --target-org <org>",
        f"sf org assign permset --name {permission_set} --on-behalf-of <integration user>"
        " --target-org <org>",
        "```",
    ]
    if plan.notes:
        lines += ["", "Grant by hand as well:", "", *(f"- {note}" for note in plan.notes)]
    return "\n".join(lines) + "\n"


# -- writing ----------------------------------------------------------------------------------


def write_package(plan: MetadataPlan, out: Path, *, permission_set: str, label: str,
                  api_version: str, description: str) -> list[Path]:
    """Write the package to `out` (replacing a previous one); the files written, sorted.

    Built in a temporary folder beside `out` and moved into place, so a failure leaves the
    previous package intact; a folder holding anything else is refused, never cleared.
    """
    _check_names(permission_set, label, api_version)
    if out.exists():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in GENERATED)
        if foreign:
            raise MetadataError([
                f"--out {out} holds files this tool did not write ({', '.join(foreign[:5])}): "
                "choose an empty or new folder"
            ])
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        root = staging / SOURCE_ROOT
        for definition in plan.fields.values():
            path = root / "objects" / definition.sobject / "fields" / \
                f"{definition.name}.field-meta.xml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(custom_field_xml(definition))
        path = root / "permissionsets" / f"{permission_set}.permissionset-meta.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(permission_set_xml(plan, label, description))
        (staging / "package.xml").write_bytes(package_xml(plan, permission_set, api_version))
        (staging / "sfdx-project.json").write_text(project_json(api_version), encoding="utf-8")
        (staging / "README.md").write_text(readme(plan, permission_set), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return sorted(p for p in out.rglob("*") if p.is_file())


def _check_names(permission_set: str, label: str, api_version: str) -> None:
    problems = []
    if not _API_NAME.match(permission_set):
        problems.append(
            f"--permission-set-name {permission_set!r} is not an API name: letters, digits "
            "and single underscores, starting with a letter, at most 80 characters"
        )
    if not 0 < len(label) <= 80:
        problems.append(f"--permission-set-label must be 1 to 80 characters, got {len(label)}")
    if not _VERSION.match(api_version):
        problems.append(f"--api-version {api_version!r} must look like 59.0")
    if problems:
        raise MetadataError(problems)


# -- command line -------------------------------------------------------------------------------


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="salesforce-crm-metadata",
        description="Write the Salesforce metadata package (custom fields + permission set) "
                    "the sync needs, in source format with a package.xml manifest.",
    )
    parser.add_argument("--mapping", required=True, type=Path,
                        help="personalization-to-crm mapping (fields written and matched on)")
    parser.add_argument("--reverse-mapping", type=Path,
                        help="crm-to-personalization mapping (fields tap-salesforce-crm reads)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the package to")
    parser.add_argument("--permission-set-name", default=DEFAULT_PERMISSION_SET)
    parser.add_argument("--permission-set-label", default=None,
                        help="label shown in Setup (default: the name with spaces)")
    parser.add_argument("--api-version", default=DEFAULT_API_VERSION)
    parser.add_argument("--include-disabled", action="store_true",
                        help="also cover objects the mapping has enabled: false (e.g. Lead)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 with a summary, or 1 with one line per problem (file:line where it applies)."""
    args = _arguments(argv)
    label = args.permission_set_label or args.permission_set_name.replace("_", " ")
    sources = [str(args.mapping), *([str(args.reverse_mapping)] if args.reverse_mapping else [])]
    try:
        forward = load_forward_mapping(args.mapping)
        reverse = load_reverse_mapping(args.reverse_mapping) if args.reverse_mapping else None
        plan = plan_metadata(forward, reverse, include_disabled=args.include_disabled)
        files = write_package(
            plan, args.out, permission_set=args.permission_set_name, label=label,
            api_version=args.api_version,
            description="Least privilege for the Personalization-CRM sync, generated by "
                        f"salesforce-crm-metadata from {' and '.join(sources)}.",
        )
    except (MappingError, MetadataError) as error:
        print(error, file=sys.stderr)
        return 1
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    edit = sum(plan.field_access.values())
    print(
        f"{args.out}: {len(plan.fields)} custom fields, permission set "
        f"{args.permission_set_name} (Edit on {edit} fields, Read on "
        f"{len(plan.field_access) - edit}, {len(plan.object_access)} objects), {len(files)} "
        f"files; deploy from {args.out} with: sf project deploy start --manifest package.xml"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
