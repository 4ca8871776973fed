"""Replay a job trace through the router and simulated centres: ``manage.py replay_trace <csv>``."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from federation import replay as service

HELP = (
    "Replay an Alibaba openb-shaped job trace (pod CSV) through the real router and simulated centres on a "
    "virtual clock, with arrivals compressed by --compress, against the federation in the database (or the "
    "one --sites builds in memory from an inventory CSV). Prints per-site wait percentiles, time-averaged "
    "card and core utilisation, jobs completed/failed and the rejected jobs with their reasons. Reads only: "
    "it writes nothing to the database (a replay is an experiment) and does not touch running centres."
)


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):
        parser.add_argument("csv", help="pod CSV: name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
                                        "creation_time,deletion_time,scheduled_time")
        parser.add_argument("--compress", type=float, default=60.0,
                            help="divide inter-arrival times by this factor (default 60); run times are kept")
        parser.add_argument("--sites", metavar="INVENTORY_CSV",
                            help="replay on a federation built in memory from this node inventory instead of "
                                 "the database's")
        parser.add_argument("--scale", type=int, default=1,
                            help="with --sites: multiply node counts (default 1: the trace's own cluster)")
        parser.add_argument("--limit", type=int, help="replay only the first N jobs (by arrival)")
        parser.add_argument("--seed", type=int, default=0, help="seed of walltime requests and centres (default 0)")
        parser.add_argument("--tick", type=int, default=10, help="virtual seconds between routing rounds (10)")
        parser.add_argument("--runtime-cap-hours", type=float, default=48.0,
                            help="cap trace run times (default 48 h; long-lived services run for months)")
        parser.add_argument("--node-failures-per-hour", type=float, default=0.0, help="per centre (default 0)")
        parser.add_argument("--outages-per-day", type=float, default=0.0, help="per centre (default 0)")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")

    def handle(self, *args, csv, compress, sites, scale, limit, seed, tick, runtime_cap_hours,
               node_failures_per_hour, outages_per_day, json: bool, **options):
        if compress <= 0:
            raise CommandError("--compress must be positive")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        if tick < 1 or scale < 1 or runtime_cap_hours <= 0:
            raise CommandError("--tick, --scale and --runtime-cap-hours must be positive")
        try:
            jobs = service.read_trace(Path(csv), limit=limit)
        except service.TraceError as exc:
            raise CommandError(str(exc)) from exc
        if sites:
            try:
                views, names = service.federation_from_inventory(Path(sites), scale=scale)
            except (service.InventoryError, OSError) as exc:
                raise CommandError(str(exc)) from exc
            source = f"{sites} (in memory, scale {scale})"
        else:
            views, names = service.federation_from_database()
            source = "the database"
        if not views:
            raise CommandError("The federation has no partitions: run seed_demo or build_sites, or pass --sites.")
        report = service.replay(views, names, jobs, compress=compress, tick_s=tick, seed=seed,
                                runtime_cap_s=int(runtime_cap_hours * 3600),
                                node_failures_per_hour=node_failures_per_hour, outages_per_day=outages_per_day)
        if json:
            self.stdout.write(_dumps({"trace": str(csv), "federation": source, **report.as_dict()}))
            return
        self._table(report, csv, source)

    def _table(self, report, csv, source) -> None:
        figures = report.as_dict()
        self.stdout.write(
            f"{csv}: {report.jobs} jobs ({report.skipped_never_started} never started in the trace, skipped), "
            f"arrivals compressed {report.compress:g}x into {report.arrival_window_s / 3600:.1f} h; "
            f"replayed on {source}: {len(report.sites)} sites; virtual span {report.span_s / 3600:.1f} h")
        header = (f"{'site':<10} {'cards':>6} {'cores':>7} {'accepted':>8} {'done':>6} {'failed':>6} {'timeout':>7} "
                  f"{'unfin':>5} {'p50 wait':>9} {'p90 wait':>9} {'p99 wait':>9} {'card%':>6} {'core%':>6} "
                  f"{'card%*':>6} {'core%*':>6}")
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for site in figures["sites"]:
            self.stdout.write(
                f"{site['site']:<10} {site['cards']:>6} {site['cores']:>7} {site['accepted']:>8} "
                f"{site['completed']:>6} {site['failed']:>6} {site['timed_out']:>7} {site['unfinished']:>5} "
                f"{_wait(site['wait_p50_s'])} {_wait(site['wait_p90_s'])} {_wait(site['wait_p99_s'])} "
                f"{site['card_utilisation_arrivals']:>6.1%} {site['core_utilisation_arrivals']:>6.1%} "
                f"{site['card_utilisation']:>6.1%} {site['core_utilisation']:>6.1%}")
        self.stdout.write("-" * len(header))
        self.stdout.write(
            f"{'all':<10} {'':>6} {'':>7} {figures['accepted']:>8} {figures['completed']:>6} {figures['failed']:>6} "
            f"{figures['timed_out']:>7} {figures['unfinished']:>5} {_wait(figures['wait_p50_s'])} "
            f"{_wait(figures['wait_p90_s'])} {_wait(figures['wait_p99_s'])}")
        if figures["rejected"]:
            reasons = ", ".join(f"{code} {n}" for code, n in sorted(figures["rejected_by"].items(),
                                                                     key=lambda kv: (-kv[1], kv[0])))
            self.stdout.write(f"rejected: {figures['rejected']} ({reasons})")
        else:
            self.stdout.write("rejected: 0")
        self.stdout.write("Waits: in the centre's queue (routing rounds add at most one tick). Utilisation of cards "
                          "and cores, time-averaged over the arrival window, and (*) over the whole span including "
                          "the drain. Nothing was written to the database.")


def _wait(value) -> str:
    return f"{'-':>9}" if value is None else f"{value:>8.0f}s"


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)
