from django import forms

from notifications.models import NotificationSettings


class DigestForm(forms.ModelForm):
    class Meta:
        model = NotificationSettings
        fields = ("digest_follower", "digest_favorite", "digest_new_workbook", "digest_embed")
