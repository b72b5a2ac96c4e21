"""Wallet writes: every balance change locks the wallet row and appends one ledger row.

Credits and debits are idempotent per (type, reference): asking twice for the same top-up or
the same payment returns the first ledger row instead of moving money twice.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import Actor
from core.db import prepared_cursor
from core.errors import InsufficientBalance, ValidationFailed
from wallets.models import Wallet, WalletTransaction

Type = WalletTransaction.Type


def wallet_get_or_create(*, user_id: int) -> Wallet:
    wallet = Wallet.objects.filter(user_id=user_id).first()
    if wallet:
        return wallet
    try:
        with transaction.atomic():
            return Wallet.objects.create(user_id=user_id)
    except IntegrityError:  # created concurrently
        return Wallet.objects.get(user_id=user_id)


def _apply(*, user_id: int, delta_fen: int, type: str, reference: str, actor: Actor) -> WalletTransaction:
    # A debit can be refused (InsufficientBalance, nothing written) and its caller may carry on in its own
    # transaction: it keeps its savepoint. A credit is never refused once its amount is checked; what can
    # still fail in it is the database, which aborts the caller's transaction anyway: no savepoint.
    savepoint = delta_fen < 0
    with transaction.atomic(savepoint=savepoint):
        wallet = Wallet.objects.select_for_update().filter(user_id=user_id).first()  # lock it directly
        if wallet is not None:
            return _apply_locked(wallet, delta_fen=delta_fen, type=type, reference=reference, actor=actor)
    # the user's first money movement: create the wallet (race-safe; kept even if a debit is refused), lock it
    wallet_get_or_create(user_id=user_id)
    with transaction.atomic(savepoint=savepoint):
        wallet = Wallet.objects.select_for_update().get(user_id=user_id)
        return _apply_locked(wallet, delta_fen=delta_fen, type=type, reference=reference, actor=actor)


def _apply_locked(wallet: Wallet, *, delta_fen: int, type: str, reference: str, actor: Actor) -> WalletTransaction:
    existing = WalletTransaction.objects.filter(wallet=wallet, type=type, reference=reference).first()
    if existing:
        return existing
    after = wallet.balance_fen + delta_fen
    if after < 0:
        raise InsufficientBalance(details={"balance_fen": wallet.balance_fen, "required_fen": -delta_fen})
    entry = WalletTransaction.objects.create(
        wallet=wallet,
        type=type,
        amount_fen=delta_fen,
        balance_before_fen=wallet.balance_fen,
        balance_after_fen=after,
        reference=reference,
        actor=str(actor),
    )
    wallet.balance_fen = after
    wallet.version += 1
    wallet.save(update_fields=["balance_fen", "version", "updated_at"])
    return entry


def _check_amount(amount_fen: int) -> None:
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise ValidationFailed("amount_fen must be a positive integer.", details={"amount_fen": amount_fen})


def wallet_credit(*, user_id: int, amount_fen: int, type: str, reference: str, actor: Actor) -> WalletTransaction:
    """Put money in (``amount_fen`` > 0, else ``ValidationFailed``); idempotent per (type, reference)."""
    _check_amount(amount_fen)
    entry = _credit_existing_wallet(user_id=user_id, amount_fen=amount_fen, type=type, reference=reference, actor=actor)
    if entry is not None:
        return entry
    return _apply(user_id=user_id, delta_fen=amount_fen, type=type, reference=reference, actor=actor)


# A credit to an existing wallet in one statement (every paid top-up notification runs it): lock the wallet,
# append the ledger row (its unique (wallet, type, reference) makes a repeated credit insert nothing), move
# the balance by the row that was inserted. Returns the wallet id, and the new row's id and balance before
# (NULL when it was credited already); no row when the user has no wallet yet.
_CREDIT = """
    WITH wallet AS (SELECT id, balance_fen FROM wallets_wallet WHERE user_id = %(user_id)s FOR UPDATE),
    entry AS (
        INSERT INTO wallets_wallettransaction
            (wallet_id, type, amount_fen, balance_before_fen, balance_after_fen, reference, actor, created_at)
        SELECT id, %(type)s, %(amount)s, balance_fen, balance_fen + %(amount)s, %(reference)s, %(actor)s, %(now)s
        FROM wallet
        ON CONFLICT ON CONSTRAINT wallet_tx_once_per_reference DO NOTHING
        RETURNING id, wallet_id, balance_before_fen, balance_after_fen
    ),
    credited AS (
        UPDATE wallets_wallet SET balance_fen = entry.balance_after_fen, version = wallets_wallet.version + 1,
            updated_at = %(now)s
        FROM entry WHERE wallets_wallet.id = entry.wallet_id
    )
    SELECT wallet.id, entry.id, entry.balance_before_fen FROM wallet LEFT JOIN entry ON true
"""


def _credit_existing_wallet(
    *, user_id: int, amount_fen: int, type: str, reference: str, actor: Actor
) -> WalletTransaction | None:
    """``_apply`` for a credit, in one statement, when the wallet exists (None when it does not)."""
    now = timezone.now()
    params = {"user_id": user_id, "type": type, "amount": amount_fen, "reference": reference, "actor": str(actor)}
    with transaction.atomic(savepoint=False), prepared_cursor() as cursor:
        cursor.execute(_CREDIT, {**params, "now": now})
        row = cursor.fetchone()
    if row is None:
        return None
    wallet_id, entry_id, before = row
    if entry_id is None:  # credited before for this reference: the first ledger row, nothing moved
        return WalletTransaction.objects.get(wallet_id=wallet_id, type=type, reference=reference)
    return WalletTransaction(
        id=entry_id,
        wallet_id=wallet_id,
        type=type,
        amount_fen=amount_fen,
        balance_before_fen=before,
        balance_after_fen=before + amount_fen,
        reference=reference,
        actor=str(actor),
        created_at=now,
    )


def wallet_debit(*, user_id: int, amount_fen: int, type: str, reference: str, actor: Actor) -> WalletTransaction:
    """Take money out; never overdraws (raises ``InsufficientBalance``, nothing written)."""
    _check_amount(amount_fen)
    return _apply(user_id=user_id, delta_fen=-amount_fen, type=type, reference=reference, actor=actor)
