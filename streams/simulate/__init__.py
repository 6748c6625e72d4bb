"""Funnel traffic: scripted scenarios with known outcomes (and, later, live simulation)."""
