"""Tick the simulated centres in scaled real time and poll the Slurm centres (production stack: run one)."""

from django.core.management.base import BaseCommand

from federation import ticker


class Command(BaseCommand):
    help = ("Run the simulated centres (advance them) and follow the Slurm centres (poll them): record status "
            "changes, keep their health, dispatch routed jobs.")

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between ticks")
        parser.add_argument("--once", action="store_true", help="one tick, then exit")

    def handle(self, *args, interval, once, **options):
        if once:
            self.stdout.write(str(ticker.tick()))
            return
        self.stdout.write(f"simulated centres: scale {ticker.running_clock().scale}×, Slurm centres polled; "
                          f"tick every {interval}s")
        ticker.run_forever(interval)
