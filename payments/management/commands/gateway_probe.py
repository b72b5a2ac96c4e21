"""``manage.py gateway_probe [wechat alipay wallyt]``: prove each gateway's credentials with one
harmless signed call (a query of a trade that does not exist). See payments/probe.py."""

from django.core.management.base import BaseCommand, CommandError

from payments.probe import GATEWAYS, probe


class Command(BaseCommand):
    help = "Query a trade that does not exist at each gateway: is our signature accepted, does the answer verify?"

    def add_arguments(self, parser):
        parser.add_argument("gateways", nargs="*", choices=[[], *GATEWAYS], help="default: all three")

    def handle(self, *args, gateways: list[str], **options):
        results = [probe(name) for name in gateways or GATEWAYS]
        for result in results:
            style = self.style.SUCCESS if result.ok else self.style.ERROR
            self.stdout.write(style(result.line()))
        failed = [result.gateway for result in results if not result.ok]
        if failed:
            raise CommandError(f"gateway probe failed for {', '.join(failed)}")
