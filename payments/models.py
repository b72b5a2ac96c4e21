from django.conf import settings
from django.db import models


class WeChatIdentity(models.Model):
    """The WeChat openid of a user (mini-program login); the payer id of JSAPI payments."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wechat")
    openid = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.openid
