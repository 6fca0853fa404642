"""The quirk catalogue: fixtures/quirks/<area>.yaml, one stable id per observable deviation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import CatalogueError
from .paths import QUIRKS_DIR, SCHEMAS

IMPACTS = ("breaks-openai-python", "breaks-strict-clients", "informational")


@dataclass(frozen=True)
class VendorReport:
    vendor: str
    level: str          # documented | reported | measured | inferred
    source: str


@dataclass(frozen=True)
class QuirkDef:
    id: str
    area: str
    title: str
    rule: str
    observable: str
    impact: str
    workaround: str
    vendors: tuple[VendorReport, ...]


@dataclass(frozen=True)
class Catalogue:
    quirks: Mapping[str, QuirkDef]

    def __contains__(self, quirk_id: object) -> bool:
        return quirk_id in self.quirks

    def get(self, quirk_id: str) -> QuirkDef:
        try:
            return self.quirks[quirk_id]
        except KeyError:
            raise CatalogueError(f"quirk {quirk_id!r} is not in the catalogue (fixtures/quirks/*.yaml)") from None


def _schema() -> dict[str, Any]:
    return json.loads((SCHEMAS / "quirks.schema.json").read_text(encoding="utf-8"))


def load_catalogue(directory: Path = QUIRKS_DIR) -> Catalogue:
    validator = jsonschema.Draft202012Validator(_schema())
    quirks: dict[str, QuirkDef] = {}
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CatalogueError(f"no quirk catalogue files in {directory}")
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CatalogueError(f"{path} is not valid YAML: {exc}") from None
        errors = list(validator.iter_errors(doc))
        if errors:
            e = errors[0]
            where = ".".join(map(str, e.absolute_path)) or "top level"
            raise CatalogueError(f"{path}: {where}: {e.message}")
        area = doc["area"]
        for qid, q in doc["quirks"].items():
            if not qid.startswith(area + "."):
                raise CatalogueError(f"{path}: quirk {qid!r} must start with its area {area!r} and a dot")
            if qid in quirks:
                raise CatalogueError(f"{path}: quirk {qid!r} is defined twice")
            quirks[qid] = QuirkDef(
                id=qid, area=area, title=q["title"], rule=q["rule"], observable=q["observable"],
                impact=q["impact"], workaround=q.get("workaround", ""),
                vendors=tuple(VendorReport(v["vendor"], v["level"], v["source"]) for v in q.get("vendors", [])),
            )
    return Catalogue(quirks)
