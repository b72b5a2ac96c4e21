"""factory-boy factories of wallets."""

import factory

from core.tests.factories import UserFactory
from wallets.models import Wallet


class WalletFactory(factory.django.DjangoModelFactory):
    """An empty wallet. Fund it with ``wallet_credit`` so the ledger explains the balance."""

    class Meta:
        model = Wallet

    user = factory.SubFactory(UserFactory)
