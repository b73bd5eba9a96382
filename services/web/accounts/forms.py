from django import forms

from .phone import EXAMPLE, accepted, normalize_phone


class PhoneForm(forms.Form):
    phone = forms.CharField(max_length=32, help_text=f"With its country code, e.g. {EXAMPLE}")

    def clean_phone(self):
        phone = normalize_phone(self.cleaned_data["phone"])
        if phone is None:
            raise forms.ValidationError(f"Enter {accepted()}.")
        return phone


class CodeForm(PhoneForm):
    code = forms.CharField(max_length=12)
