"""Test-wide settings: the fast profile, no progress bars, CPU."""
import os

os.environ.setdefault("MBC_PROFILE", "fast")
os.environ.setdefault("MBC_PROGRESS", "0")
os.environ.setdefault("MBC_DEVICE", "cpu")
