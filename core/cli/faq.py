"""`tongdai faq`: the knowledge base the self-service bot answers from — import, export, try
a question, score the matching on a labelled set."""

from __future__ import annotations

from pathlib import Path

import click

from tongdai.core.cli.base import main, open_hub


@main.group()
def faq() -> None:
    """Knowledge-base articles and the bot's matching."""


@faq.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--replace", is_flag=True,
              help="the knowledge base becomes exactly this file (others deleted)")
def faq_import(file: str, replace: bool) -> None:
    """Add or update the articles of FILE (YAML or JSON, `articles:` list); try it with
    core/selfservice/sample_kb.yaml."""
    from tongdai.core.selfservice import articles

    try:
        items = articles.load_file(Path(file))
    except articles.FileError as exc:
        raise click.ClickException(str(exc)) from None
    with open_hub() as hub:
        v = articles.save(hub, items, replace=replace)
        total = hub.redis.hlen(hub.keys.kb("articles"))
    click.echo(f"{len(items)} articles imported ({total} in the knowledge base, version {v})")


@faq.command("export")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
def faq_export(fmt: str) -> None:
    """Every article, as a file `tongdai faq import` reads back."""
    from tongdai.core.selfservice import articles

    with open_hub() as hub:
        click.echo(articles.dump(articles.all_articles(hub), fmt), nl=False)


@faq.command("try")
@click.argument("text")
def faq_try(text: str) -> None:
    """Which article the bot would answer TEXT with, and how sure it is."""
    from tongdai.core.selfservice import matching

    with open_hub() as hub:
        m = matching.index(hub).match(text)
        threshold = hub.config.hub.selfservice.threshold
    if m.article is None:
        click.echo("no article matches: handed to a person")
        return
    verdict = "answers" if m.confidence >= threshold else "hands off (below the threshold)"
    click.echo(f"{m.article.id}  confidence {m.confidence:.3f} (threshold {threshold}): "
               f"the bot {verdict}")


@faq.command("eval")
@click.option("--file", "path", default=None, type=click.Path(dir_okay=False),
              help="a labelled set (default: the project's, against the sample knowledge base)")
@click.option("--threshold", type=float, default=None,
              help="the confidence to score at (default: selfservice.threshold, else 0.3)")
@click.option("--split", type=click.Choice(["all", "dev", "holdout"]), default="all",
              show_default=True, help="holdout: only the questions kept out of tuning")
@click.option("--misses", is_flag=True, help="list the wrong answers and needless hand-offs")
def faq_eval(path: str | None, threshold: float | None, split: str, misses: bool) -> None:
    """Precision@1, the share answered and the threshold curve on a labelled set."""
    from tongdai.core.selfservice import articles
    from tongdai.core.selfservice import evaluation as ev
    from tongdai.core.selfservice.matching import Index

    set_path = Path(path) if path else ev.DEFAULT_SET
    try:
        questions, arts = ev.load_set(set_path)
    except articles.FileError as exc:
        raise click.ClickException(str(exc)) from None
    if threshold is None:
        threshold = _configured_threshold()
    if split != "all":
        questions = [q for q in questions if bool(q.get("holdout")) == (split == "holdout")]
    scored = ev.score(questions, Index(arts))
    p = ev.at(scored, threshold)
    click.echo(f"{set_path}: {len(scored)} questions ({split}), {len(arts)} articles")
    click.echo(f"threshold {threshold:.2f}: precision@1 {p.precision:.3f} ({p.right}/"
               f"{p.answered}), answered {p.share:.1%} ({p.answered}/{p.total})")
    by_lang: dict[str, list] = {}
    for s in scored:
        by_lang.setdefault(s.lang, []).append(s)
    for lang, rows in sorted(by_lang.items()):
        q = ev.at(rows, threshold)
        click.echo(f"  {lang:<8} precision@1 {q.precision:.3f}  answered {q.share:.1%}  "
                   f"({len(rows)} questions)")
    click.echo("threshold  precision@1  answered")
    for c in ev.curve(scored):
        click.echo(f"  {c.threshold:.1f}      {c.precision:.3f}        {c.share:.1%}")
    if misses:
        for s in p.misses:
            what = "WRONG" if s.confidence >= threshold else "HANDED OFF"
            click.echo(f"{what} {s.q!r} ({s.lang}): want {s.want}, best {s.got} "
                       f"at {s.confidence:.3f}")


def _configured_threshold() -> float:
    """The config's threshold when a config is there; the default otherwise."""
    from tongdai.core.config import load_config
    from tongdai.core.config_selfservice import SelfServiceSection
    from tongdai.core.errors import TongdaiError

    try:
        return load_config().hub.selfservice.threshold
    except (TongdaiError, OSError):
        return SelfServiceSection().threshold
