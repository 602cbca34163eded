"""Typed exceptions of the brand guard: one base class, one subclass per kind of refusal.
Messages name the input, the value seen and what would have been accepted."""

from __future__ import annotations


class BrandGuardError(Exception):
    """Base of every error raised by brand_guard."""


class VaultError(BrandGuardError):
    """The vault cannot do what was asked (missing item, bad layout, bad argument)."""


class WrongPassphrase(VaultError):
    """The key does not open this vault; nothing was decrypted."""


class InsecureKeyFile(VaultError):
    """A key file is readable by other users (permissions wider than 0600)."""


class InvalidImage(VaultError):
    """An image offered to the vault is not a whole PNG/JPEG/WEBP of acceptable size."""


class TamperedFile(BrandGuardError):
    """Encrypted bytes failed authentication: the file was changed or swapped."""


class EgressRefused(BrandGuardError):
    """The offline guard refused an outbound connection or a share link."""


class UnsafeModel(BrandGuardError):
    """A model directory holds pickled weights or remote code that the guard refuses."""


class ProvenanceError(BrandGuardError):
    """Provenance cannot be written or read (bad record, malformed PNG/GLB, bad key)."""


class LedgerError(BrandGuardError):
    """The ledger refused an event or cannot be read."""


class LedgerBusy(LedgerError):
    """The ledger stayed locked by other writers through every retry."""


class PermissionDenied(LedgerError):
    """The actor's role may not record this event."""


class RatiosError(BrandGuardError):
    """Bad input to the ratio reports (baseline CSV rows, unknown format)."""
