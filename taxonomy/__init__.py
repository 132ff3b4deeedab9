"""The risk taxonomy as data: schema, loader and the bundled Weidinger et al. file; and the
project's one-line wording of a YAML or validation error (every file reader uses it)."""

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
    "NIST_AI_600_1",
    "Automation",
    "Crosswalk",
    "Risk",
    "RiskArea",
    "Taxonomy",
    "TaxonomyError",
    "load_taxonomy",
    "taxonomy_sha256",
    "validation_location",
    "validation_message",
    "validation_problem",
    "yaml_message",
]
