"""The web app's guards: who may connect (loopback or a shared token), cross-site request protection, uploads.

Nothing a request sends is used as a file-system path: photos are addressed by database id, uploads are stored
under the SHA-256 of their bytes, and manifest photos are picked by row number.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from pipeline.images import check_image_bytes
from traits.errors import BadImageError, BadValueError, ConflictingOptionsError
from traits.io import atomic_write, make_folder

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
TOKEN_COOKIE = "ft_token"
CSRF_COOKIE = "ft_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

# Content sniffing: the first bytes of each accepted format (the file name and the browser's type are ignored).
MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
         (b"II*\x00", "tif"), (b"MM\x00*", "tif"), (b"BM", "bmp"))
PIL_FORMATS = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "tif": "TIFF", "bmp": "BMP", "webp": "WEBP"}


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool, token: str | None) -> str | None:
    """The token to require for serving on host: None on loopback; elsewhere only with allow_remote, and a token
    (the one given, or a new random one)."""
    if is_loopback(host):
        return token or None
    if not allow_remote:
        raise ConflictingOptionsError(f"Serving on {host} would let other machines reach the trait database.",
                          "Keep the default --host 127.0.0.1, or pass --allow-remote (a shared secret token is then "
                          "required from every browser; set it with --token or $FINER_TRAITS_WEB_TOKEN).")
    if token is not None and len(token) < 16:
        raise BadValueError("The access token is shorter than 16 characters.",
                          "Use a long random token, e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`.")
    return token or secrets.token_urlsafe(24)


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the expected one."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def new_csrf_token() -> str:
    """A fresh random value for the cross-site request cookie (the forms echo it back)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class UploadLimits:
    """How large an upload may be, in bytes and in decoded pixels."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


def human_size(n: float) -> str:
    """Bytes as '48 KB' or '20.0 MB', for limit messages."""
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{max(1, round(n / 1e3))} KB"


def sniff_format(head: bytes) -> str | None:
    """The image format told by the file's first bytes ('jpg', 'png', ...), or None when it is not an image."""
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def check_upload(data: bytes, name: str, limits: UploadLimits) -> str:
    """Raise BadImageError unless data is an image within the limits; returns its format suffix."""
    if not data:
        raise BadImageError(f"The uploaded file {name!r} is empty.", "Choose a photo file.")
    if len(data) > limits.max_bytes:
        raise BadImageError(f"The uploaded file {name!r} is {human_size(len(data))}, above the "
                            f"{human_size(limits.max_bytes)} limit.", "Downscale or re-compress the photo.")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise BadImageError(f"The uploaded file {name!r} is not a JPEG, PNG, GIF, TIFF, BMP or WebP image (its "
                            "content was checked, not its name).", "Upload a photo file.")
    check_image_bytes(data, name, PIL_FORMATS[fmt], limits.max_pixels)
    return fmt


def store_upload(data: bytes, fmt: str, folder: Path) -> tuple[Path, str]:
    """Write checked upload bytes as FOLDER/<sha256>.<fmt> (once: the same photo is stored once); returns
    (path, sha256)."""
    digest = hashlib.sha256(data).hexdigest()
    make_folder(folder, "upload folder")
    path = folder / f"{digest}.{fmt}"
    if not path.is_file():
        atomic_write(path, lambda p: p.write_bytes(data))
    return path, digest
