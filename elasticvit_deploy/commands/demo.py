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
@click.option("--tables", "tables", default=None, type=click.Path(file_okay=False, exists=True),
              help="Import the nn-Meter phone tables from this directory if they are not installed (else they are "
              "downloaded; offline without them the digital-twin steps are skipped).")
@click.option("--json", "as_json", is_flag=True, help="Print where everything went as JSON at the end.")
def demo_command(out_dir: str, train_steps: int, predictor_blocks: int, tables: str | None, as_json: bool) -> None:
    """Run the whole loop on this machine, nothing attached (about 10 minutes on 2 cores the first time):
    train a tiny-space supernet on Fashion-MNIST, build a host latency predictor, search under a host-latency
    budget, export the winner to TFLite and verify it on this host, measure it on simulated phones, search the
    ElasticViT space for Pixel 1 at 30 ms with its table and verify the winner on the phone's digital twin (a
    simulated phone timed from that table), and write the per-phone report. Each step prints the command it
    runs."""
    say = (lambda _m: None) if as_json else click.echo
    summary = Demo(DemoSettings(Path(out_dir), train_steps, predictor_blocks,
                                    tables=Path(tables) if tables else None), say).run()
    if as_json:
        emit_json(summary)
        return
    click.echo(f"\ndemo finished in {summary['total_s'] / 60:.1f} min")
    click.echo(f"  supernet checkpoint : {summary['checkpoint']}")
    click.echo(f"  chosen subnet (TFLite): {summary['model']}")
    if summary["twin_choice"] is not None:
        twin = summary["twin_choice"]
        click.echo(f"  pixel1 subnet (TFLite): {twin['model']} ({twin['measured_ms']:.1f} ms on its twin)")
    click.echo(f"  search result       : {Path(out_dir) / 'search' / 'result.json'}")
    click.echo(f"  report (HTML per phone, summary.md for a pull request): {summary['report']}")
    click.echo(f"  logs of every step  : {Path(out_dir) / 'logs'}")
