"""flows/entities.py: CURIEs, entity types, per-paper entity rows and the preferred-name rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.entities import (
    CURIE_PATTERNS,
    NAMESPACES,
    Curie,
    EntityProblem,
    IdentifierError,
    entity_type_of,
    looks_like_symbol,
    namespace_for,
    normalise_entities,
    preferred_name,
    to_curie,
)
from flows.records import EntityRef, Listing, NormalisedEntity
from flows.seeds import read_seed

SEED = Path(__file__).resolve().parents[1] / "seeds" / "PMC12809390.md"


@pytest.mark.parametrize(
    ("namespace", "identifier", "curie"),
    [
        # genes
        ("NCBI Gene", "3630", "NCBIGene:3630"),
        ("Gene", "3630", "NCBIGene:3630"),
        ("NCBIGene", "3630", "NCBIGene:3630"),
        ("ncbigene", "3630", "NCBIGene:3630"),
        ("Entrez", "3630", "NCBIGene:3630"),
        ("Entrez Gene", " 3630 ", "NCBIGene:3630"),
        ("NCBI Gene", "NCBIGene:3630", "NCBIGene:3630"),
        ("HGNC", "6081", "HGNC:6081"),
        ("HGNC", "HGNC:HGNC:6081", "HGNC:6081"),
        ("Ensembl", "ENSG00000254647", "ensembl:ENSG00000254647"),
        ("UniProt", "P01308", "uniprot:P01308"),
        ("UniProtKB", "p01308", "uniprot:P01308"),
        # diseases
        ("MESH", "D005234", "MESH:D005234"),
        ("MeSH", "MESH:D005234", "MESH:D005234"),
        ("MESH", "d005234", "MESH:D005234"),
        ("mesh", "C536030", "MESH:C536030"),
        ("MESH", "D 005234", "MESH:D005234"),
        ("MONDO", "0013209", "MONDO:0013209"),
        ("MONDO", "MONDO:0013209", "MONDO:0013209"),
        ("MONDO", "MONDO_0013209", "MONDO:0013209"),
        ("DOID", "9352", "DOID:9352"),
        ("DOID", "DOID:9352", "DOID:9352"),
        ("HP", "0001513", "HP:0001513"),
        ("HPO", "HP_0001513", "HP:0001513"),
        ("OMIM", "125853", "mim:125853"),
        ("MIM", "#125853", "mim:#125853"),
        # species
        ("taxon", "9606", "NCBITaxon:9606"),
        ("NCBI Taxon", "9606", "NCBITaxon:9606"),
        ("NCBITaxon", "9606", "NCBITaxon:9606"),
        ("txid", "9606", "NCBITaxon:9606"),
        ("NCBITaxon", "NCBITaxon:9606", "NCBITaxon:9606"),
        # chemicals
        ("PubChem CID", "11949646", "pubchem.compound:11949646"),
        ("CID", "11949646", "pubchem.compound:11949646"),
        ("pubchem.compound", "11949646", "pubchem.compound:11949646"),
        ("CHEBI", "15377", "CHEBI:15377"),
        ("ChEBI", "CHEBI:15377", "CHEBI:15377"),
        ("CHEBI", "CHEBI:CHEBI:15377", "CHEBI:15377"),
        # variants
        ("dbSNP", "rs121913529", "dbsnp:rs121913529"),
        ("dbSNP", "121913529", "dbsnp:rs121913529"),
        ("dbsnp", "RS121913529", "dbsnp:rs121913529"),
        ("tmVar", "p|SUB|V|600|E", "tmvar:p|SUB|V|600|E"),
        ("tmVar", "tmVar:c|SUB|C|677|T;HGVS:c.677C>T", "tmvar:c|SUB|C|677|T;HGVS:c.677C>T"),
        ("HGVS", "p.V600E", "hgvs:p.V600E"),
        ("HGVS", "NM_004333.4:c.1799T>A", "hgvs:NM_004333.4:c.1799T>A"),
        # cell lines
        ("Cellosaurus", "CVCL_0030", "cellosaurus:CVCL_0030"),
        ("cellosaurus", "0030", "cellosaurus:CVCL_0030"),
        ("Cellosaurus", "cvcl_0030", "cellosaurus:CVCL_0030"),
        ("Cellosaurus", "cellosaurus:CVCL_0030", "cellosaurus:CVCL_0030"),
        # other ontologies
        ("GO", "0006954", "GO:0006954"),
        ("GO", "GO:0006954", "GO:0006954"),
        ("CL", "0000182", "CL:0000182"),
        ("UBERON", "0002107", "UBERON:0002107"),
    ],
)
def test_to_curie(namespace: str, identifier: str, curie: str) -> None:
    result = to_curie(namespace, identifier)
    assert str(result) == curie
    assert result.known
    assert re.match(CURIE_PATTERNS[result.prefix], result.local_id)


@pytest.mark.parametrize(
    ("namespace", "identifier", "curie"),
    [
        ("Orphanet", "ORPHA:558", "orphanet:ORPHA:558"),
        ("Orphanet", "orphanet:558", "orphanet:558"),
        ("My  DB!", "x 1", "my_db:x1"),
        ("ClinVar", "VCV000012345", "clinvar:VCV000012345"),
    ],
)
def test_unknown_namespace_is_kept_and_flagged(namespace: str, identifier: str, curie: str) -> None:
    result = to_curie(namespace, identifier)
    assert str(result) == curie
    assert not result.known
    assert namespace_for(namespace) is None


@pytest.mark.parametrize(
    ("namespace", "identifier", "reason"),
    [
        ("MESH", "MESH:X12", "does not match the MESH pattern"),
        ("MESH", "D12", "does not match the MESH pattern"),
        ("NCBI Gene", "abc", "does not match the NCBIGene pattern"),
        ("MONDO", "MONDO:123", "does not match the MONDO pattern"),
        ("taxon", "9606a", "does not match the NCBITaxon pattern"),
        ("PubChem CID", "CID-11", "does not match the pubchem.compound pattern"),
        ("CHEBI", "CHEBI:water", "does not match the CHEBI pattern"),
        ("dbSNP", "ss123", "does not match the dbsnp pattern"),
        ("Cellosaurus", "CVCL_00300", "does not match the cellosaurus pattern"),
        ("HGVS", "V600E", "does not match the hgvs pattern"),
        ("Orphanet", "  ", "empty identifier"),
    ],
)
def test_to_curie_rejects(namespace: str, identifier: str, reason: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        to_curie(namespace, identifier)
    assert reason in caught.value.reason
    assert (caught.value.namespace, caught.value.identifier) == (namespace, identifier)


def test_spellings_are_unambiguous_and_patterns_compile() -> None:
    spellings = [(s, ns.prefix) for ns in NAMESPACES for s in (ns.prefix, *ns.spellings)]
    for spelling, prefix in spellings:
        found = namespace_for(spelling)
        assert found is not None and found.prefix == prefix, spelling
    assert set(CURIE_PATTERNS) == {ns.prefix for ns in NAMESPACES}
    for pattern in CURIE_PATTERNS.values():
        re.compile(pattern)


def test_curie_str() -> None:
    assert str(Curie("NCBIGene", "3630")) == "NCBIGene:3630"


@pytest.mark.parametrize(
    ("category", "namespace", "entity_type"),
    [
        ("Genes", "NCBI Gene", "gene"),
        ("Diseases", "MESH", "disease"),
        ("Species", "taxon", "species"),
        ("Chemicals", "MESH", "chemical"),
        ("Mutations", "tmVar", "variant"),
        ("Variants", "dbSNP", "variant"),
        ("Cell lines", "Cellosaurus", "cell line"),
        ("CellLines", "Cellosaurus", "cell line"),
        ("genes", "MESH", "gene"),  # the label wins over the namespace
        ("Things", "NCBI Gene", "gene"),  # an unknown label falls back to the namespace
        ("Things", "CHEBI", "chemical"),
        ("Things", "MONDO", "disease"),
        ("Things", "MESH", "other"),  # mesh spans diseases and chemicals
        ("Things", "Orphanet", "other"),
    ],
)
def test_entity_type_of(category: str, namespace: str, entity_type: str) -> None:
    assert entity_type_of(category, namespace) == entity_type


def _seed_refs() -> list[EntityRef]:
    # written by hand from seeds/PMC12809390.md
    def disease(name: str, identifier: str) -> EntityRef:
        return EntityRef("Diseases", "fulltext", name, "MESH", identifier, line=32)

    return [
        EntityRef(
            "Diseases",
            "linked",
            "metabolic dysfunction-associated steatotic liver disease",
            "MONDO",
            "0013209",
            line=27,
        ),
        EntityRef(
            "Genes",
            "fulltext",
            "INS",
            "NCBI Gene",
            "3630",
            ("insulin",),
            ("IDDM", "IDDM1", "IDDM2", "ILPR", "IRDN", "MODY10"),
            line=31,
        ),
        disease("hepatic steatosis", "D005234"),
        disease("metabolic dysfunction", "D008659"),
        disease("inflammation", "D007249"),
        disease("liver disease", "D008107"),
        disease("liver fibrosis", "D008103"),
        disease("fibrosis", "D005355"),
        disease("loss of skeletal muscle mass", "C536030"),
        EntityRef(
            "Species",
            "fulltext",
            "Homo sapiens",
            "taxon",
            "9606",
            ("human",),
            line=33,
            rank="species",
        ),
    ]


def test_hand_built_refs_match_the_seed_parser() -> None:
    assert list(read_seed(SEED).entities) == _seed_refs()


def test_real_seed_normalised() -> None:
    entities, problems = normalise_entities("PMC12809390", _seed_refs())
    assert problems == []

    def disease(
        curie: str, name: str, listing: Listing = "fulltext", line: int = 32
    ) -> NormalisedEntity:
        return NormalisedEntity(
            curie, "disease", listing, name, None, None, None, None, (name,), line,
            category="Diseases",
        )  # fmt: skip

    assert entities == [
        disease(
            "MONDO:0013209",
            "metabolic dysfunction-associated steatotic liver disease",
            "linked",
            27,
        ),
        NormalisedEntity(
            curie="NCBIGene:3630",
            entity_type="gene",
            listing="fulltext",
            name_as_written="INS",
            symbol="INS",
            full_name="insulin",
            common_name=None,
            rank=None,
            names=("INS", "insulin", "IDDM", "IDDM1", "IDDM2", "ILPR", "IRDN", "MODY10"),
            line=31,
            category="Genes",
        ),
        disease("MESH:D005234", "hepatic steatosis"),
        disease("MESH:D008659", "metabolic dysfunction"),
        disease("MESH:D007249", "inflammation"),
        disease("MESH:D008107", "liver disease"),
        disease("MESH:D008103", "liver fibrosis"),
        disease("MESH:D005355", "fibrosis"),
        disease("MESH:C536030", "loss of skeletal muscle mass"),
        NormalisedEntity(
            curie="NCBITaxon:9606",
            entity_type="species",
            listing="fulltext",
            name_as_written="Homo sapiens",
            symbol=None,
            full_name=None,
            common_name="human",
            rank="species",
            names=("Homo sapiens", "human"),
            line=33,
            category="Species",
        ),
    ]


def test_duplicates_merge_within_a_listing_but_not_across_listings() -> None:
    refs = [
        EntityRef("Diseases", "linked", "fibrosis", "MESH", "D005355", line=5),
        EntityRef("Diseases", "fulltext", "fibrosis", "MESH", "D005355", line=9),
        EntityRef("Diseases", "fulltext", "Fibrosis", "MeSH", "d005355", ("scarring",), line=10),
        EntityRef("Genes", "fulltext", "INS", "NCBI Gene", "3630", (), ("IDDM",), line=11),
        EntityRef("Genes", "fulltext", "INS", "Gene", "3630", ("insulin",), ("ILPR",), line=12),
    ]
    entities, problems = normalise_entities("P1", refs)
    assert problems == []
    assert [(e.curie, e.listing, e.line, e.names) for e in entities] == [
        ("MESH:D005355", "linked", 5, ("fibrosis",)),
        ("MESH:D005355", "fulltext", 9, ("fibrosis", "Fibrosis", "scarring")),
        ("NCBIGene:3630", "fulltext", 11, ("INS", "IDDM", "insulin", "ILPR")),
    ]
    assert entities[2].full_name == "insulin"  # filled in from the later listing


def test_bad_identifiers_become_problems_and_the_rest_loads() -> None:
    refs = [
        EntityRef("Diseases", "fulltext", "odd", "MESH", "X12", line=7),
        EntityRef("Genes", "fulltext", "INS", "NCBI Gene", "abc", line=8),
        EntityRef("Diseases", "fulltext", "fibrosis", "MESH", "D005355", line=9),
        EntityRef("Diseases", "fulltext", "rare thing", "Orphanet", "ORPHA:558", line=10),
    ]
    entities, problems = normalise_entities("P1", refs)
    assert [(e.curie, e.known_namespace) for e in entities] == [
        ("MESH:D005355", True),
        ("orphanet:ORPHA:558", False),
    ]
    assert [(p.paper_id, p.line, p.curie_or_raw) for p in problems] == [
        ("P1", 7, "MESH:X12"),
        ("P1", 8, "NCBI Gene:abc"),
    ]
    assert all(isinstance(p, EntityProblem) and "pattern" in p.reason for p in problems)


def test_species_rank_and_common_name() -> None:
    refs = [
        EntityRef("Species", "fulltext", "Mus", "taxon", "10088", ("genus", "mice"), line=1),
        EntityRef("Species", "fulltext", "E. coli K-12", "taxon", "83333", ("strain",), line=2),
    ]
    entities, _ = normalise_entities("P1", refs)
    assert [(e.common_name, e.rank, e.names) for e in entities] == [
        ("mice", "genus", ("Mus", "mice")),
        (None, "strain", ("E. coli K-12",)),
    ]


@pytest.mark.parametrize(
    ("entity_type", "counts", "symbol", "expected"),
    [
        ("gene", {"INS": 3, "Ins": 5, "insulin": 9}, None, "Ins"),
        ("gene", {"INS": 4, "Ins": 4}, None, "INS"),  # tie: casefold equal, then code points
        ("gene", {"IDDM": 2, "INS": 2}, None, "IDDM"),
        ("gene", {"insulin": 3}, "INS", "INS"),  # no symbol-shaped name: the given symbol
        ("gene", {}, "INS", "INS"),
        ("disease", {"liver fibrosis": 2, "Liver fibrosis": 2, "hepatic fibrosis": 2}, None,
         "hepatic fibrosis"),
        ("disease", {"Liver fibrosis": 2, "liver fibrosis": 2}, None, "Liver fibrosis"),
        ("disease", {"b": 1, "a": 1, "c": 3}, None, "c"),
        ("disease", {"a": 0, "b": 1}, None, "b"),  # a count below one is no vote
        ("species", {"Homo sapiens": 5, "human": 5}, None, "Homo sapiens"),
    ],
)  # fmt: skip
def test_preferred_name(
    entity_type: str, counts: dict[str, int], symbol: str | None, expected: str
) -> None:
    assert preferred_name(entity_type, counts, symbol) == expected


def test_preferred_name_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one name"):
        preferred_name("disease", {"x": 0})


_NAMES = st.text(alphabet="aAbBéÉ -1ß", min_size=1, max_size=4)


@given(
    entity_type=st.sampled_from(["gene", "disease", "species", "other"]),
    counts=st.dictionaries(_NAMES, st.integers(0, 3), min_size=1, max_size=8),
    symbol=st.none() | _NAMES,
    data=st.data(),
)
def test_preferred_name_ignores_input_order(
    entity_type: str, counts: dict[str, int], symbol: str | None, data: st.DataObject
) -> None:
    if not symbol and not any(c > 0 and n.strip() for n, c in counts.items()):
        return  # nothing to choose from: a ValueError, tested above
    shuffled = data.draw(st.permutations(list(counts.items())))
    first = preferred_name(entity_type, counts, symbol)
    assert preferred_name(entity_type, dict(shuffled), symbol) == first
    # and the winner has the most votes among the names allowed to compete
    votes = {n: c for n, c in counts.items() if c > 0 and n.strip()}
    if entity_type == "gene" and any(looks_like_symbol(n) for n in votes):
        votes = {n: c for n, c in votes.items() if looks_like_symbol(n)}
    elif (entity_type == "gene" and symbol) or not votes:
        assert first == symbol  # no symbol-shaped name, or no name at all: the given symbol
        return
    assert votes[first] == max(votes.values())


@pytest.mark.parametrize(
    ("name", "expected"),
    [("INS", True), ("IDDM1", True), ("p53", True), ("TNF-α", True), ("insulin", False),
     ("liver disease", False), ("IL 6", False), ("", False)],
)  # fmt: skip
def test_looks_like_symbol(name: str, expected: bool) -> None:
    assert looks_like_symbol(name) is expected
