"""Prompt templates, candidate trait phrases and sentence composition."""
