"""The risk taxonomy as data: schema, loader and the bundled Weidinger et al. file."""

from taxonomy._loader import DEFAULT_TAXONOMY, TaxonomyError, load_taxonomy, taxonomy_sha256
from taxonomy._schema import AILUMINATE, NIST_AI_600_1, Automation, Crosswalk, Risk, RiskArea, Taxonomy

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
]
