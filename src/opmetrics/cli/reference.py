"""Commands that write or check reference material: the data contract, measures and definitions
docs, a methodology file, the seed citations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from opmetrics import methodology as methodology_mod
from opmetrics.cli.common import (
    MethOpt,
    app,
    console,
    err,
    load_methodology,
)

contract_app = typer.Typer(help="The input data contract: docs and JSON Schemas.", no_args_is_help=True)


app.add_typer(contract_app, name="contract")


@contract_app.command("docs")
def contract_docs(
    out: Annotated[Path, typer.Argument(help="Markdown file to write.")] = Path("docs/data-contract.md"),
) -> None:
    """Generate the data contract document from the machine-readable contract."""
    from opmetrics.methodology.contract import markdown

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(), encoding="utf-8")
    console.print(f"Wrote {out}")


@contract_app.command("json-schema")
def contract_json_schema(
    out: Annotated[Path, typer.Argument(help="Folder for <table>.schema.json files.")] = Path("docs/schemas"),
) -> None:
    """Write a JSON Schema per input table, for producers to validate rows before sending."""
    from opmetrics.methodology.contract import json_schema, load_contract

    out.mkdir(parents=True, exist_ok=True)
    for t in load_contract().tables.values():
        (out / f"{t.name}.schema.json").write_text(json.dumps(json_schema(t), indent=2) + "\n")
    console.print(f"Wrote {len(load_contract().tables)} schemas to {out}")


@app.command("measures-doc")
def measures_doc(
    out: Annotated[Path, typer.Argument(help="Markdown file to write.")] = Path("docs/measures.md"),
    methodology: MethOpt = None,
) -> None:
    """Write the measure catalogue (docs/measures.md) from the methodology."""
    m = load_methodology(methodology)
    out.write_text(methodology_mod.catalogue_markdown(m), encoding="utf-8")
    console.print(f"Wrote {out} ({len(m.cpms)} CPMs, {len(m.measures)} outcome measures)")


@app.command("definitions-doc")
def definitions_doc(
    out: Annotated[Path, typer.Argument(help="Markdown file to write.")] = Path("docs/definitions.md"),
    methodology: MethOpt = None,
    what_if: Annotated[
        Path | None, typer.Option(help="A `what-if` comparison (Markdown) to include.")
    ] = Path("docs/what-if-2026.4-2027.1.md"),
) -> None:
    """Write docs/definitions.md: each measure's seed text, rule, deviations and readings."""
    from opmetrics.methodology import definitions

    m = load_methodology(methodology)
    out.write_text(definitions.markdown(m, what_if), encoding="utf-8")
    console.print(f"Wrote {out} ({len(m.deviations)} deviations and readings)")


@app.command("check-methodology")
def check_methodology(path: Annotated[Path, typer.Argument(help="Methodology YAML file.")]) -> None:
    """Validate a methodology file and summarise it."""
    m = load_methodology(path)
    console.print(
        f"[green]OK[/] {path}: version {m.version}, {len(m.srvs)} SRVs, "
        f"{len(m.processes)} business processes, CPMs {', '.join(c.id for c in m.cpms)}; "
        f"fingerprint {m.fingerprint[:16]}"
    )


seeds_app = typer.Typer(help="The seed documents definitions cite: find a quote, check every citation.")


app.add_typer(seeds_app, name="seeds")


SeedsOpt = Annotated[
    Path | None,
    typer.Option("--seeds", help="Folder of the seed files (default: $OPMETRICS_SEEDS or ../shared/seeds)."),
]


def _seeds(folder: Path | None) -> Path:
    from opmetrics.methodology import citations

    found = folder or citations.seeds_dir()
    if found is None or not all((found / f).exists() for f in citations.SEED_FILES.values()):
        err.print(f"error: the seed files {', '.join(citations.SEED_FILES.values())} are not in {found}")
        raise typer.Exit(1)
    return found


@seeds_app.command("find")
def seeds_find(quote: Annotated[str, typer.Argument(help="Words to find.")], seeds: SeedsOpt = None) -> None:
    """Where words are in the seeds, as a citation to paste: the seed, its lines, the words quoted."""
    from opmetrics.methodology import citations

    where = citations.locate(quote, _seeds(seeds))
    if not where:
        err.print(f'"{quote}" is not in the seeds')
        raise typer.Exit(1)
    for w in where:
        console.print(f'{w} "{quote}"', markup=False, highlight=False)


@seeds_app.command("check")
def seeds_check(seeds: SeedsOpt = None) -> None:
    """Check every seed citation in the repository: each carries a quote found at its lines."""
    from opmetrics.methodology import citations

    problems = citations.check_tree(folder=_seeds(seeds))
    n = len(citations.tree_citations())
    for p in problems:
        console.print(p, markup=False, highlight=False)
    if problems:
        err.print(f"{len(problems)} of {n} citations do not hold")
        raise typer.Exit(1)
    console.print(f"[green]OK[/] {n} citations, each quote at its cited lines")
