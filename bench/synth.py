"""Synthetic seed pages and full texts, shaped like the real seed, for tests and benchmarks."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

GENES = [
    ("INS", "insulin", 3630, ["IDDM", "IDDM1", "IDDM2", "ILPR", "IRDN", "MODY10"]),
    ("TNF", "tumor necrosis factor", 7124, ["DIF", "TNFA", "TNFSF2", "TNLG1F"]),
    ("IL6", "interleukin 6", 3569, ["BSF-2", "HGF", "HSF", "IFNB2", "IL-6"]),
    ("TP53", "tumor protein p53", 7157, ["BCC7", "LFS1", "P53", "TRP53"]),
    ("APOE", "apolipoprotein E", 348, ["AD2", "APO-E", "LDLCQ5"]),
    ("PPARG", "peroxisome proliferator activated receptor gamma", 5468, ["CIMT1", "GLM1", "NR1C3"]),
]
DISEASES = [
    ("hepatic steatosis", "MESH:D005234"),
    ("liver fibrosis", "MESH:D008103"),
    ("fibrosis", "MESH:D005355"),
    ("inflammation", "MESH:D007249"),
    ("liver disease", "MESH:D008107"),
    ("obesity", "MESH:D009765"),
    ("type 2 diabetes", "MESH:D003924"),
    ("insulin resistance", "MESH:D007333"),
    ("loss of skeletal muscle mass", "MESH:C536030"),
    ("metabolic dysfunction-associated steatotic liver disease", "MONDO:0013209"),
]
SPECIES = [("Homo sapiens", "human", 9606), ("Mus musculus", "house mouse", 10090)]
_PROSE = (
    "the of and in to a with for was were by on as that patients study liver muscle exercise "
    "cells expression levels mice signalling pathway results analysis increased decreased "
    "significant associated group treatment model response function tissue protein role"
)
WORDS = tuple(_PROSE.split())


@dataclass(frozen=True, slots=True)
class SynthPaper:
    """One generated paper: its id, seed page and full-text Markdown."""

    paper_id: str
    seed: str
    fulltext: str


def _paragraph(rng: random.Random, names: list[str], words: int) -> str:
    out = []
    for i in range(words):
        out.append(rng.choice(names) if names and i % 17 == 5 else rng.choice(WORDS))
    return " ".join(out).capitalize() + "."


def make_paper(index: int, base_url: str, fulltext_kb: int = 50, seed: int = 0) -> SynthPaper:
    """A deterministic synthetic paper; index picks its id and content."""
    rng = random.Random(seed * 1_000_003 + index)
    paper_id = f"PMC{9_000_000 + index}"
    genes = rng.sample(GENES, 2)
    diseases = rng.sample(DISEASES, 5)
    species = rng.choice(SPECIES)
    n_refs = rng.randint(10, 40)
    gene_items = ", ".join(
        f"{sym} ({full}) [NCBI Gene {gid}] {{aka {', '.join(aka)}}}"
        for sym, full, gid, aka in genes
    )
    disease_items = ", ".join(f"{name} ({curie})" for name, curie in diseases[1:])
    url = f"{base_url}/paper/{paper_id}"
    published = f"20{10 + index % 15}-0{1 + index % 9}-1{index % 9}"
    seed_page = f"""# Synthetic study {index} of {genes[0][0]} in {diseases[0][0]}

**Authors:** Author {index % 97} One, Author {index % 89} Two, Ana Müller-Łukasz

PMC · DOI: 10.5555/synth.{index} · Journal of Synthetic Results · {published}

## TL;DR

{genes[0][0]} drives {diseases[0][0]} in a synthetic cohort.

## Contribution

It shows how {genes[1][1]} relates to {diseases[1][0]}.

## Key findings

- {genes[0][0]} expression rises with {diseases[0][0]}.
- {diseases[2][0].capitalize()} follows {diseases[3][0]}.
- Effects were seen in {species[1]} samples.

## Abstract

{_paragraph(rng, [], 120)}

{_paragraph(rng, [], 80)}

## Linked entities

- **Diseases:** {diseases[0][0]} ({diseases[0][1]})

## Full-text entities

- **Genes:** {gene_items}
- **Diseases:** {disease_items}
- **Species:** {species[0]} ({species[1]}, species) [taxon {species[2]}]

## Full text

_Full body text omitted from this summary view._ Fetch the complete paper as Markdown: {url}/full.md

## References

{n_refs} references — full list in the complete paper: {url}/full.md

---
Source: {url}
"""
    names = [g[0] for g in genes] + [g[1] for g in genes] + [d[0] for d in diseases] + [species[1]]
    sections = []
    target = fulltext_kb * 1024
    headings = ["Introduction", "Methods", "Results", "Discussion"]
    size = 0
    i = 0
    while size < target:
        heading = headings[i % len(headings)]
        body = "\n\n".join(_paragraph(rng, names, 150) for _ in range(3))
        block = f"## {heading} {i // len(headings) + 1}\n\n{body}\n"
        if i % 4 == 2:
            block += f"\n### Subsection {i}\n\n{_paragraph(rng, names, 80)}\n"
        sections.append(block)
        size += len(block)
        i += 1
    refs = "\n".join(
        f"{r}. Author{r} A, Writer B. A cited study {r}. J Synth. {1990 + r % 30};{r}:1-10. "
        f"doi:10.5555/ref.{index}.{r}. PMID: {10_000_000 + index * 50 + r}."
        for r in range(1, n_refs + 1)
    )
    fulltext = (
        f"# Synthetic study {index} of {genes[0][0]} in {diseases[0][0]}\n\n"
        f"**Authors:** Author {index % 97} One\n\n## Abstract\n\n{_paragraph(rng, names, 120)}\n\n"
        + "\n".join(sections)
        + f"\n## References\n\n{refs}\n"
    )
    return SynthPaper(paper_id, seed_page, fulltext)


def write_seeds(folder: Path, papers: list[SynthPaper]) -> None:
    """Write each paper's seed page as <id>.md."""
    folder.mkdir(parents=True, exist_ok=True)
    for paper in papers:
        (folder / f"{paper.paper_id}.md").write_text(paper.seed, encoding="utf-8")
