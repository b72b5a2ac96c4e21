"""Audit trail shared by every state machine.

Each app keeps its own event table (so ``lockers`` and ``wallets`` import no other app) built
on this abstract base: who or what acted, the transition, when, and why. Events are written
by the transition functions in the same transaction as the change they describe.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


@dataclass(frozen=True)
class Actor:
    """Who or what caused a change: ``user:12``, ``staff:3``, ``gateway:wechat``, ``system:expiry``."""

    kind: str
    ident: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.ident}"

    @classmethod
    def user(cls, user) -> Actor:
        return cls("staff" if getattr(user, "is_staff", False) else "user", str(user.pk))

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls("system", name)

    @classmethod
    def gateway(cls, name: str) -> Actor:
        return cls("gateway", name)


class AuditEvent(models.Model):
    action = models.CharField(max_length=64)
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32, blank=True)
    actor = models.CharField(max_length=80)
    reason = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        abstract = True
        ordering = ("id",)

    def __str__(self) -> str:
        change = f" {self.from_status}->{self.to_status}" if self.to_status else ""
        return f"{self.action}{change} by {self.actor}"
