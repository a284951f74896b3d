"""Class activation maps: Grad-CAM family, Finer-CAM, RefineCAM; batched, exact and fast (see docs/cam.md)."""

from pipeline.cam.api import default_method, explain, explain_many, plain_method
from pipeline.cam.engine import METHOD_NAMES, CamRequest, CamResult, parse_method
from pipeline.cam.text import explain_text

__all__ = ["METHOD_NAMES", "CamRequest", "CamResult", "default_method", "explain", "explain_many", "explain_text",
           "parse_method", "plain_method"]
