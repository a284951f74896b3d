"""Backbones, classifiers, preprocessing and model folders."""

from pipeline.models.backbones import DEFAULT_BACKBONE, Backbone, create_backbone
from pipeline.models.classifier import Classifier, LinearProbeClassifier, ZeroShotClassifier
from pipeline.models.io import load_classifier, save_classifier
from pipeline.models.openclip import BIOCLIP, OpenClipBundle, load_open_clip
from pipeline.models.preprocess import Preprocess

__all__ = ["DEFAULT_BACKBONE", "BIOCLIP", "Backbone", "Classifier", "LinearProbeClassifier", "OpenClipBundle",
           "Preprocess", "ZeroShotClassifier", "create_backbone", "load_classifier", "load_open_clip",
           "save_classifier"]
