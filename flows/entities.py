"""EntityRef -> CURIEs, entity types and per-paper entity rows; the preferred-name rule.

Identifiers become Bioregistry-style CURIEs (`NCBIGene:3630`, `MESH:D005234`). Namespace
spellings are looked up case-, space- and punctuation-insensitively in `NAMESPACES`, a table of
data, not code branches. Before the local id is checked against its namespace's pattern it is
cleaned: whitespace is removed, a repeated prefix is stripped (`MESH:D005234`, `CHEBI:15377`,
`MONDO_0013209` under their own namespace), letters are upper- or lower-cased where the
namespace's ids have only one case (MeSH, UniProt, Cellosaurus upper; dbSNP `rs` lower) and a
missing id prefix is added (`0030` -> `CVCL_0030`, `121913529` -> `rs121913529`). An unknown
namespace is never dropped: it becomes a lower-cased, sanitised prefix with the permissive
pattern `UNKNOWN_ID_PATTERN`, and `Curie.known` is false. Mutations keep the tmVar id as
written under `tmvar:`, or an HGVS expression under `hgvs:` (neither is a Bioregistry prefix).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

from flows.records import EntityName, EntityRef, EntityType, Listing, NormalisedEntity
from flows.seeds.summary import RANKS

Case = Literal["upper", "lower", "keep"]

UNKNOWN_ID_PATTERN = r"^\S+$"
_UNKNOWN_ID = re.compile(UNKNOWN_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Namespace:
    """One identifier namespace: canonical prefix, local-id pattern and implied entity type."""

    prefix: str
    pattern: str
    entity_type: EntityType
    spellings: tuple[str, ...] = ()
    case: Case = "keep"  # ids of this namespace have one letter case, so fold to it
    local_prefix: str = ""  # the local id starts with this; added when a page leaves it out


# patterns are Bioregistry's, except uniprot (bioregistry's has stray commas and an anchor that
# binds to one alternative only) and tmvar/hgvs, which bioregistry does not register.
NAMESPACES: tuple[Namespace, ...] = (
    Namespace(
        "NCBIGene",
        r"^\d+$",
        "gene",
        ("NCBI Gene", "Gene", "Entrez", "Entrez Gene", "GeneID", "NCBI GeneID"),
    ),
    Namespace("HGNC", r"^\d{1,5}$", "gene", ("HGNC ID",)),
    Namespace(
        "ensembl",
        r"^((ENS[FPTG]\d{11}(\.\d+)?)|(FB\w{2}\d{7})|(Y[A-Z]{2}\d{3}[a-zA-Z](\-[A-Z])?)"
        r"|([A-Z_a-z0-9]+(\.)?(t)?(\d+)?([a-z])?))$",
        "gene",
        ("Ensembl Gene",),
    ),
    Namespace(
        "uniprot",
        r"^([A-NR-Z][0-9]([A-Z][A-Z0-9]{2}[0-9]){1,2}|[OPQ][0-9][A-Z0-9]{3}[0-9])(\.\d+)?$",
        "gene",
        ("UniProtKB", "Swiss-Prot"),
        case="upper",
    ),
    Namespace("MESH", r"^(C|D)\d{6,9}$", "other", ("MeSH",), case="upper"),
    Namespace("MONDO", r"^\d{7}$", "disease"),
    Namespace("DOID", r"^\d+$", "disease", ("DO", "Disease Ontology")),
    Namespace("HP", r"^\d{7}$", "disease", ("HPO", "Human Phenotype Ontology")),
    Namespace("mim", r"^[*#+%^]?\d{6}$", "disease", ("OMIM", "MIM")),
    Namespace(
        "NCBITaxon",
        r"^\d+$",
        "species",
        ("taxon", "NCBI Taxon", "txid", "taxid", "NCBI Taxonomy", "Taxonomy"),
    ),
    Namespace(
        "pubchem.compound",
        r"^\d+$",
        "chemical",
        ("PubChem CID", "CID", "PubChem", "PubChem Compound"),
    ),
    Namespace("CHEBI", r"^\d+$", "chemical"),
    Namespace("dbsnp", r"^rs\d+$", "variant", ("dbSNP", "rs", "rsID"), "lower", "rs"),
    Namespace("tmvar", r"^\S+$", "variant", ("tmVar",)),
    Namespace("hgvs", r"^(\S+:)?[cgmnopr]\.\S+$", "variant"),
    Namespace("cellosaurus", r"^CVCL_[A-Z0-9]{4}$", "cell line", ("CVCL",), "upper", "CVCL_"),
    Namespace("GO", r"^\d{7}$", "other", ("Gene Ontology",)),
    Namespace("CL", r"^\d{7}$", "other", ("Cell Ontology",)),
    Namespace("UBERON", r"^\d+$", "other"),
)


def _key(spelling: str) -> str:
    # "NCBI Gene", "ncbi_gene" and "NCBIGene" are one spelling
    return "".join(ch for ch in spelling.casefold() if ch.isalnum())


_BY_SPELLING: Mapping[str, Namespace] = MappingProxyType(
    {_key(s): ns for ns in NAMESPACES for s in (ns.prefix, *ns.spellings)}
)
_COMPILED = {ns.prefix: re.compile(ns.pattern) for ns in NAMESPACES}

CURIE_PATTERNS: Mapping[str, str] = MappingProxyType({ns.prefix: ns.pattern for ns in NAMESPACES})

# category labels are compared by _key, so "Cell lines", "CellLines" and "cell-lines" are one
_CATEGORY_LABELS: Mapping[EntityType, tuple[str, ...]] = {
    "gene": ("gene", "genes", "protein", "proteins"),
    "disease": ("disease", "diseases", "phenotype", "phenotypes"),
    "species": ("species", "organism", "organisms"),
    "chemical": ("chemical", "chemicals", "drug", "drugs"),
    "variant": ("mutation", "mutations", "variant", "variants", "snp", "snps", "dnamutation",
                "proteinmutation"),
    "cell line": ("cellline", "celllines"),
}  # fmt: skip
_CATEGORY_TYPES: Mapping[str, EntityType] = MappingProxyType(
    {label: kind for kind, labels in _CATEGORY_LABELS.items() for label in labels}
)


@dataclass(frozen=True, slots=True)
class Curie:
    """A compact identifier, prefix:local_id, in Bioregistry style."""

    prefix: str
    local_id: str

    def __str__(self) -> str:
        return f"{self.prefix}:{self.local_id}"

    @property
    def known(self) -> bool:
        """False when the prefix came from a namespace not in the table."""
        return self.prefix in CURIE_PATTERNS


class IdentifierError(ValueError):
    """An identifier that does not match its namespace's pattern."""

    def __init__(self, namespace: str, identifier: str, reason: str) -> None:
        super().__init__(f"{namespace}:{identifier}: {reason}")
        self.namespace = namespace
        self.identifier = identifier
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EntityProblem:
    """An entity whose identifier was rejected; the rest of the paper still loads."""

    paper_id: str
    line: int
    curie_or_raw: str
    reason: str


def namespace_for(namespace: str) -> Namespace | None:
    """The table entry for a written namespace spelling, or None when it is unknown."""
    return _BY_SPELLING.get(_key(namespace))


def to_curie(namespace: str, identifier: str) -> Curie:
    """Canonical CURIE for a namespace and local id as written, or raise IdentifierError."""
    known = namespace_for(namespace)
    local = "".join(identifier.split())
    if known is None:
        prefix = _sanitise(namespace)
        local = _strip_repeated_prefix(local, lambda token: _sanitise(token) == prefix)
        if not _UNKNOWN_ID.match(local):
            raise IdentifierError(namespace, identifier, "empty identifier")
        return Curie(prefix, local)

    local = _strip_repeated_prefix(local, lambda token: namespace_for(token) is known)
    if known.case == "upper":
        local = local.upper()
    elif known.case == "lower":
        local = local.lower()
    pattern = _COMPILED[known.prefix]
    if known.local_prefix and not local.startswith(known.local_prefix):
        local = known.local_prefix + local
    if not pattern.match(local):
        raise IdentifierError(
            namespace,
            identifier,
            f"{local!r} does not match the {known.prefix} pattern {known.pattern}",
        )
    return Curie(known.prefix, local)


def _sanitise(namespace: str) -> str:
    # an unknown namespace still needs a prefix a curie can carry: lower case, no spaces
    return re.sub(r"[^a-z0-9.]+", "_", namespace.casefold()).strip("_.") or "unknown"


def _strip_repeated_prefix(local: str, is_own_prefix: Callable[[str], bool]) -> str:
    # "MESH:D005234" under MESH, "CHEBI:CHEBI:15377", OBO-style "MONDO_0013209"
    while True:
        m = re.match(r"([^:]+):(.+)$", local) or re.match(r"([A-Za-z]+)_(.+)$", local)
        if not m or not is_own_prefix(m.group(1)):
            return local
        local = m.group(2)


def entity_type_of(category: str, namespace: str) -> EntityType:
    """Entity type from the list's category label, else from the namespace, else other."""
    by_category = _CATEGORY_TYPES.get(_key(category))
    if by_category is not None:
        return by_category
    known = namespace_for(namespace)
    return known.entity_type if known is not None else "other"


def looks_like_symbol(name: str) -> bool:
    """True for symbol-shaped names: no whitespace, with an uppercase letter or a digit."""
    return (
        bool(name)
        and not any(ch.isspace() for ch in name)
        and any(ch.isupper() or ch.isdigit() for ch in name)
    )


def normalise_entities(
    paper_id: str, refs: Sequence[EntityRef]
) -> tuple[list[NormalisedEntity], list[EntityProblem]]:
    """One row per (CURIE, listing) of a paper, and a problem per rejected identifier."""
    rows: dict[tuple[str, Listing], NormalisedEntity] = {}
    problems: list[EntityProblem] = []
    for ref in refs:
        try:
            curie = to_curie(ref.namespace, ref.identifier)
        except IdentifierError as exc:
            raw = f"{ref.namespace}:{ref.identifier}"
            problems.append(EntityProblem(paper_id, ref.line, raw, exc.reason))
            continue
        entity = _entity_from(ref, curie)
        key = (entity.curie, entity.listing)
        rows[key] = _merge(rows[key], entity) if key in rows else entity
    return list(rows.values()), problems


def _entity_from(ref: EntityRef, curie: Curie) -> NormalisedEntity:
    entity_type = entity_type_of(ref.category, ref.namespace)
    symbol = full_name = common_name = rank = None
    extra = list(ref.extra_names)
    if entity_type == "gene":
        symbol = ref.name
        full_name = extra[0] if extra else None
    elif entity_type == "species":
        # the page parser takes the rank out of the names; a ref built elsewhere may not have
        rank = ref.rank or next((x for x in extra if x.casefold() in RANKS), None)
        extra = [x for x in extra if x.casefold() not in RANKS]
        common_name = extra[0] if extra else None
    return NormalisedEntity(
        curie=str(curie),
        entity_type=entity_type,
        listing=ref.listing,
        name_as_written=ref.name,
        symbol=symbol,
        full_name=full_name,
        common_name=common_name,
        rank=rank,
        names=_unique((ref.name, *extra, *ref.aliases)),
        line=ref.line,
        known_namespace=curie.known,
        category=ref.category,
    )


def _merge(first: NormalisedEntity, later: NormalisedEntity) -> NormalisedEntity:
    # the first listing wins; later ones only add names and fill fields the first left empty
    return replace(
        first,
        entity_type=later.entity_type if first.entity_type == "other" else first.entity_type,
        symbol=first.symbol or later.symbol,
        full_name=first.full_name or later.full_name,
        common_name=first.common_name or later.common_name,
        rank=first.rank or later.rank,
        names=_unique((*first.names, *later.names)),
    )


def _unique(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n))


def preferred_name(
    entity_type: str, names_with_counts: Mapping[str, int], symbol: str | None = None
) -> str:
    """The name most papers wrote; genes prefer symbol-shaped names; ties by code point order.

    `names_with_counts` maps each name as written (the listed name, not aliases, which come
    from the source database and so repeat on every page) to the number of papers writing it;
    names with a count below one are ignored. For genes only symbol-shaped names compete
    (`looks_like_symbol`); when none is, `symbol` is returned if given. Ties go to the name
    whose casefolded form comes first in Unicode code point order, then to the name itself,
    so the result does not depend on the mapping's order. Raises ValueError with no names.
    """
    candidates = {n: c for n, c in names_with_counts.items() if c > 0 and n.strip()}
    if entity_type == "gene":
        symbols = {n: c for n, c in candidates.items() if looks_like_symbol(n)}
        if symbols:
            candidates = symbols
        elif symbol:
            return symbol
    if not candidates:
        if symbol:
            return symbol
        raise ValueError("preferred_name needs at least one name with a positive count")
    return min(candidates, key=lambda n: (-candidates[n], n.casefold(), n))


def entity_names(entities: Sequence[NormalisedEntity]) -> tuple[EntityName, ...]:
    """Every name a paper gives each entity, once per (curie, name), the strongest kind first.

    The kinds rank: the listed name, then a gene's full name or a species' common name, then
    the aliases after `aka`; the linked listing is read before the full-text one.
    """
    seen: set[tuple[str, str]] = set()
    names: list[EntityName] = []
    for e in sorted(entities, key=lambda e: e.listing):
        kinds: list[tuple[str, Literal["name", "full_name", "common_name", "alias"]]] = [
            (e.name_as_written, "name")
        ]
        if e.full_name:
            kinds.append((e.full_name, "full_name"))
        if e.common_name:
            kinds.append((e.common_name, "common_name"))
        kinds.extend((n, "alias") for n in e.names)
        for name, kind in kinds:
            if (e.curie, name) not in seen:
                seen.add((e.curie, name))
                names.append(EntityName(e.curie, name, kind))
    return tuple(names)
