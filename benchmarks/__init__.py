"""Benchmarks: perspicio side by side with Captum and with the model's own floor."""
