"""Typed hooks through which apps above ``orders`` take part in an order's life without ``orders``
importing them: each registers its function in its ``AppConfig.ready()``; an editor follows both ends.

- ``on_user_cancel(hook)``: runs when the owner cancels an order (``orders.services.order_cancel_by_user``),
  before the order is cancelled and outside any transaction, so that a hook may ask a gateway.
  ``payments`` registers the closing of the order's open payments (a payment that turns out to be paid
  wins: the hook lets the order be paid, and the cancel then answers 409).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.audit import Actor
    from orders.models import Order


class UserCancelHook(Protocol):
    def __call__(self, *, order: Order, actor: Actor, reason: str) -> None: ...


_user_cancel: list[UserCancelHook] = []


def on_user_cancel(hook: UserCancelHook) -> UserCancelHook:
    """Register ``hook`` (once, however often ``ready()`` runs). Returns it, so it can decorate."""
    if hook not in _user_cancel:
        _user_cancel.append(hook)
    return hook


def user_cancel_hooks() -> tuple[UserCancelHook, ...]:
    return tuple(_user_cancel)
