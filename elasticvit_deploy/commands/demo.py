"""`elasticvit-deploy demo`: train, build a predictor, search, export, verify, measure and report, on this host."""

from __future__ import annotations

from pathlib import Path

import click

from ..cli_common import emit_json
from ..demo import Demo, DemoSettings


@click.command("demo")
@click.option("--out", "out_dir", default="evd-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where every step writes (a rerun reuses what is there).")
@click.option("--train-steps", type=click.IntRange(1), default=400, show_default=True)
@click.option("--predictor-blocks", type=click.IntRange(6), default=48, show_default=True,
              help="Blocks the host predictor build measures.")
@click.option("--json", "as_json", is_flag=True, help="Print where everything went as JSON at the end.")
def demo_command(out_dir: str, train_steps: int, predictor_blocks: int, as_json: bool) -> None:
    """Run the whole loop on this machine, nothing attached (about 10 minutes on 2 cores the first time):
    train a tiny-space supernet on Fashion-MNIST, build a host latency predictor, search under a host-latency
    budget, export the winner to TFLite and verify it on this host, measure it on simulated phones, and write the
    per-phone report. Each step prints the command it runs."""
    say = (lambda _m: None) if as_json else click.echo
    summary = Demo(DemoSettings(Path(out_dir), train_steps, predictor_blocks), say).run()
    if as_json:
        emit_json(summary)
        return
    click.echo(f"\ndemo finished in {summary['total_s'] / 60:.1f} min")
    click.echo(f"  supernet checkpoint : {summary['checkpoint']}")
    click.echo(f"  chosen subnet (TFLite): {summary['model']}")
    click.echo(f"  search result       : {Path(out_dir) / 'search' / 'result.json'}")
    click.echo(f"  report (HTML per phone, summary.md for a pull request): {summary['report']}")
    click.echo(f"  logs of every step  : {Path(out_dir) / 'logs'}")
