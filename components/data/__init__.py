"""Keyword-spotting data: the synthesized corpus, the Speech Commands loader, splits, features."""
