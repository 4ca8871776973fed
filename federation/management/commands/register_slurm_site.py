"""Register (or update) a Slurm centre from what its slurmrestd reports: one partition per Slurm partition."""

from django.core.management.base import BaseCommand, CommandError

from accounts.actors import system_actor
from allocations.catalogue import ensure_resource_classes
from federation import slurm_services
from federation.slurm import SlurmError
from portal.errors import ApplicationError


class Command(BaseCommand):
    help = ("Register a Slurm centre (slurmrestd REST v0.0.38, JWT): its partitions are read from Slurm. "
            "Example: register_slurm_site local --url http://127.0.0.1:6820 --user ci "
            "--token-file /var/lib/slurm-local/ci.jwt --gpu-family v100")

    def add_arguments(self, parser):
        parser.add_argument("code", help="the centre's code (slug), e.g. local")
        parser.add_argument("--name", default="", help="display name (default: 'Slurm <code>')")
        parser.add_argument("--city", default="-")
        parser.add_argument("--url", required=True, help="slurmrestd, e.g. http://127.0.0.1:6820")
        parser.add_argument("--user", required=True, help="the Slurm user jobs run as")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--token-file", help="a file holding the user's JWT (re-read when it changes)")
        source.add_argument("--jwt-key", help="Slurm's HS256 key file: short-lived tokens are minted from it")
        source.add_argument("--token-env", help="name of an environment variable holding a token to store")
        parser.add_argument("--workdir", default="/tmp", help="jobs' working directory at the centre")  # noqa: S108
        parser.add_argument("--gpu-family", default="", help="accelerator family of GPU partitions, e.g. v100")
        parser.add_argument("--accelerator-model", default="", help="card model, e.g. V100")

    def handle(self, *args, code, name, city, url, user, token_file, jwt_key, token_env, workdir, gpu_family,
               accelerator_model, **options):
        import os

        if token_env:
            token = os.environ.get(token_env, "")
            if not token:
                raise CommandError(f"${token_env} is empty")
            connection = {"token_source": "token", "token": token}
        elif token_file:
            connection = {"token_source": "token_file", "credential_path": token_file}
        else:
            connection = {"token_source": "jwt_key", "credential_path": jwt_key}
        prices = {rc.code: rc.credits_per_unit for rc in ensure_resource_classes()}
        try:
            site = slurm_services.slurm_site_register(
                actor=system_actor(), code=code, name=name or f"Slurm {code}", city=city, url=url, user=user,
                workdir=workdir, gpu_family=gpu_family, accelerator_model=accelerator_model, national_prices=prices,
                **connection)
        except (SlurmError, ApplicationError) as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        for p in site.partitions.all():
            self.stdout.write(f"  {p.name:<16} (Slurm {p.remote_name}) {p.nodes} nodes × {p.cores_per_node} cores"
                              f" × {p.gpus_per_node} GPUs, {p.memory_mb_per_node} MB")
        self.stdout.write(self.style.SUCCESS(f"Slurm centre {site.code} registered ({url}, user {user})"))
