from django import forms

from .phone import normalize_phone


class PhoneForm(forms.Form):
    phone = forms.CharField(max_length=32, help_text="E.164, e.g. +15551234567")

    def clean_phone(self):
        phone = normalize_phone(self.cleaned_data["phone"])
        if phone is None:
            raise forms.ValidationError("Enter a phone number like +15551234567.")
        return phone


class CodeForm(PhoneForm):
    code = forms.CharField(max_length=12)
