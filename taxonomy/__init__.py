"""The risk taxonomy as data: schema, loader and the bundled Weidinger et al. file; the
project's one-line wording of a YAML or validation error; and the one reader of user-supplied
files (``read_user_text`` and its JSON, JSONL and YAML forms), which every package uses."""

from taxonomy._files import (
    MAX_FILE_BYTES,
    UserFileError,
    check_unicode,
    kind_of,
    read_user_bytes,
    read_user_json,
    read_user_json_lines,
    read_user_text,
    read_user_yaml,
    require_type,
)
from taxonomy._loader import (
    DEFAULT_TAXONOMY,
    TaxonomyError,
    load_taxonomy,
    taxonomy_sha256,
)
from taxonomy._messages import (
    validation_location,
    validation_message,
    validation_problem,
    yaml_message,
)
from taxonomy._schema import (
    AILUMINATE,
    NIST_AI_600_1,
    Automation,
    Crosswalk,
    Risk,
    RiskArea,
    Taxonomy,
)

__all__ = [
    "AILUMINATE",
    "DEFAULT_TAXONOMY",
    "MAX_FILE_BYTES",
    "NIST_AI_600_1",
    "Automation",
    "Crosswalk",
    "Risk",
    "RiskArea",
    "Taxonomy",
    "TaxonomyError",
    "UserFileError",
    "check_unicode",
    "kind_of",
    "load_taxonomy",
    "read_user_bytes",
    "read_user_json",
    "read_user_json_lines",
    "read_user_text",
    "read_user_yaml",
    "require_type",
    "taxonomy_sha256",
    "validation_location",
    "validation_message",
    "validation_problem",
    "yaml_message",
]
