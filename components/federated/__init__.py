"""Federated fine-tuning on Flower with Partial Variable Training and Online Model Compression."""
