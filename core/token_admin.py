"""The back office's view of API sessions (simplejwt's outstanding refresh tokens): who is signed in
where, and a "Revoke" action for a stolen phone or token. It replaces simplejwt's own admin, which
shows each refresh token's text (a credential) to anyone who may view the table."""

from __future__ import annotations

from django.contrib import admin, messages
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from core.admin import ReadOnlyAdmin
from core.jwt_auth import revoke_user


class SessionAdmin(ReadOnlyAdmin):
    list_display = ("user", "jti", "created_at", "expires_at", "revoked")
    list_filter = ("blacklistedtoken__blacklisted_at",)
    search_fields = ("user__username", "jti")
    fields = ("user", "jti", "created_at", "expires_at", "revoked")
    readonly_fields = fields
    actions = ("revoke_sessions_of_these_users",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "blacklistedtoken").defer("token")

    @admin.display(boolean=True, description="revoked or used")
    def revoked(self, obj: OutstandingToken) -> bool:
        return hasattr(obj, "blacklistedtoken")

    @admin.action(description="Revoke every session of these users (log them out everywhere)")
    def revoke_sessions_of_these_users(self, request, queryset) -> None:
        if not request.user.has_perm("token_blacklist.add_blacklistedtoken"):
            self.message_user(request, "You may not revoke sessions.", messages.ERROR)
            return
        users = {token.user for token in queryset if token.user is not None}
        count = sum(revoke_user(user) for user in users)
        self.message_user(request, f"Revoked {count} sessions of {len(users)} users.", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def install(site: admin.AdminSite) -> None:
    """Swap simplejwt's admins for ``SessionAdmin`` (called once, from ``config/urls.py``)."""
    for model in (OutstandingToken, BlacklistedToken):
        if site.is_registered(model):
            site.unregister(model)
    OutstandingToken._meta.verbose_name = "API session"
    OutstandingToken._meta.verbose_name_plural = "API sessions"
    site.register(OutstandingToken, SessionAdmin)
