"""Mapping files between Marketing Cloud Personalization and Salesforce CRM.

Analytics engineers change what is shared by editing YAML (see transforms/README.md);
the taps and targets load it with `load_mapping` and work from the returned model.
"""

from crm_sync_mapping.conversions import Conversion, ConversionError
from crm_sync_mapping.crm_field import FIELD_TYPES, CrmField
from crm_sync_mapping.loader import (
    check_text,
    load_forward_mapping,
    load_mapping,
    load_reverse_mapping,
    locate,
)
from crm_sync_mapping.model import (
    FieldMapping,
    ForwardMapping,
    FuzzyRule,
    IdentityRule,
    MatchRule,
    ObjectMapping,
    ReverseMapping,
    ReverseObjectMapping,
    SegmentMapping,
    WriteMode,
)
from crm_sync_mapping.normalize import normalize_company_name, normalize_email
from crm_sync_mapping.problems import MappingError, Problem
from crm_sync_mapping.schema_check import mapping_schema

__all__ = [
    "FIELD_TYPES",
    "Conversion",
    "ConversionError",
    "CrmField",
    "FieldMapping",
    "ForwardMapping",
    "FuzzyRule",
    "IdentityRule",
    "MappingError",
    "MatchRule",
    "ObjectMapping",
    "Problem",
    "ReverseMapping",
    "ReverseObjectMapping",
    "SegmentMapping",
    "WriteMode",
    "check_text",
    "load_forward_mapping",
    "load_mapping",
    "load_reverse_mapping",
    "locate",
    "mapping_schema",
    "normalize_company_name",
    "normalize_email",
]
