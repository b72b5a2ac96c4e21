from django.contrib import admin

from config.admin import ReadOnlyAdmin
from payments.models import WeChatIdentity


@admin.register(WeChatIdentity)
class WeChatIdentityAdmin(ReadOnlyAdmin):
    list_display = ("user", "openid", "created_at")
    search_fields = ("openid", "user__username")
